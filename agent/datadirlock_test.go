package agent

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDataDirLock: while one holder has an agent's data dir, a second
// (another agent, or a cleanup) is refused with the holder's pid; once
// released, the data dir can be taken again.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	release, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("(pid %d)", os.Getpid())) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second lock of a held data dir: %v, want a refusal naming pid %d and %s", err, os.Getpid(), dir)
	}
	release()
	release, err = lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	release()
}
