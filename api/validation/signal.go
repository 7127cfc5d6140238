package validation

import (
	"fmt"
	"strconv"
	"strings"
)

// signals are the Linux signal numbers by name. Containers are Linux
// processes wherever the CLI runs, so this table is fixed rather than taken
// from the host.
var signals = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5,
	"SIGABRT": 6, "SIGIOT": 6, "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9,
	"SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14,
	"SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19,
	"SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24,
	"SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29,
	"SIGPOLL": 29, "SIGPWR": 30, "SIGSYS": 31,
}

// signalNames maps numbers back to one canonical name each.
var signalNames = func() map[int]string {
	m := make(map[int]string, len(signals))
	for name, n := range signals {
		// Prefer the common name where two share a number.
		if name == "SIGIOT" || name == "SIGPOLL" {
			continue
		}
		m[n] = name
	}
	return m
}()

// Realtime signals have no fixed names; they are accepted by number.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// ParseSignal reads a stop signal written as SIGTERM, TERM, term or 15 and
// returns its canonical form (SIGTERM; a realtime signal stays a number)
// and its number.
func ParseSignal(s string) (canonical string, number int, err error) {
	s = strings.TrimSpace(s)
	if n, convErr := strconv.Atoi(s); convErr == nil {
		if name, ok := signalNames[n]; ok {
			return name, n, nil
		}
		if n >= sigRTMin && n <= sigRTMax {
			return strconv.Itoa(n), n, nil
		}
		return "", 0, fmt.Errorf("%d is not a signal number; use 1-31 or %d-%d", n, sigRTMin, sigRTMax)
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if n, ok := signals[name]; ok {
		return signalNames[n], n, nil
	}
	return "", 0, fmt.Errorf("unknown signal %q; use a name such as SIGTERM, SIGINT or SIGQUIT, or a number", s)
}
