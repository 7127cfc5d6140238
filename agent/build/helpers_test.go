package build

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// currentPID is the running buildkitd's process id, 0 when none runs.
func (d *daemon) currentPID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pid
}

// startCount is how many times buildkitd was started.
func (d *daemon) startCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runs
}
