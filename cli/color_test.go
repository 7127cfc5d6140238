package cli

import (
	"os"
	"strings"
	"testing"
)

func TestColorStates(t *testing.T) {
	table := "ID   LAST HEARTBEAT   STATE               PORTS\n" +
		"a    1s ago           running (healthy)   80\n" +
		"b    2s ago           failed              \n" +
		"c    3s ago           complete            81\n" +
		"d    4s ago           pending\n"
	got := colorStates(table)
	want := "ID   LAST HEARTBEAT   STATE               PORTS\n" +
		"a    1s ago           " + colorGreen + "running (healthy)" + colorReset + "   80\n" +
		"b    2s ago           " + colorRed + "failed" + colorReset + "              \n" +
		"c    3s ago           complete            81\n" +
		"d    4s ago           " + colorYellow + "pending" + colorReset + "\n"
	if got != want {
		t.Errorf("colorStates =\n%q\nwant\n%q", got, want)
	}
	// Without the colour codes the table is unchanged, so still aligned.
	plain := strings.NewReplacer(colorGreen, "", colorRed, "", colorYellow, "", colorReset, "").Replace(got)
	if plain != table {
		t.Errorf("colouring moved text:\n%s", plain)
	}
}

func TestColorOnlyOnTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if colorOutput(f) {
		t.Error("colour chosen for a regular file")
	}
	var b strings.Builder
	if colorOutput(&b) {
		t.Error("colour chosen for a buffer")
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no terminal to check the positive case: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	t.Setenv("NO_COLOR", "")
	if !colorOutput(tty) {
		t.Error("no colour on a terminal")
	}
	t.Setenv("NO_COLOR", "1")
	if colorOutput(tty) {
		t.Error("colour on a terminal despite NO_COLOR")
	}
}
