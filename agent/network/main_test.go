package network

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: the
// namespace helpers start goroutines that must all end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
