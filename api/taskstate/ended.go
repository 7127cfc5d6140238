package taskstate

import (
	"cmp"
	"strconv"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// This file is the one place that words how a task ended. Events, ps,
// apply --wait, rollout status and the dependency reasons all use it, so
// they never describe the same ending differently.

// EndReason says why a finished task ended, for event messages and
// rollout failures: "exit code 137", "unhealthy: probe timed out, exit
// code 137", or the error its agent reported. It is never empty: without
// an error or exit code it is the status message, or "no reason given".
func EndReason(st *berthv1.TaskStatus) string {
	return cmp.Or(endCause(st), st.GetMessage(), "no reason given")
}

// Ended says in a few words how a task ended, for tables and one-line
// verdicts: "failed (exit code 1)", "failed (oom)", "rejected (no such
// image)", "complete".
func Ended(st *berthv1.TaskStatus) string {
	word := Name(st.GetState())
	if st.GetOomKilled() {
		// The agent's error spells out the limit; a table wants the fact.
		return word + " (oom)"
	}
	if cause := endCause(st); cause != "" {
		return word + " (" + cause + ")"
	}
	return word
}

// endCause is the error and exit code of a finished task, each once: ""
// when it reported neither.
func endCause(st *berthv1.TaskStatus) string {
	code, err := st.GetExitCode(), st.GetErr()
	exit := "exit code " + strconv.Itoa(int(code))
	switch {
	case err == "" && code != 0:
		return exit
	case err == "":
		return ""
	case code != 0 && strings.HasPrefix(err, "task: non-zero exit"):
		// The agent's own words for an exit code add nothing to it.
		return exit
	case code != 0 && !strings.Contains(err, strconv.Itoa(int(code))):
		return err + ", " + exit
	}
	return err
}
