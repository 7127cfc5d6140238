package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of the berth command, as the root command's help documents
// them.
const (
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a mistake in how a command was called: an unknown command
// or flag, or arguments of the wrong number or shape. Execute prints it
// with a pointer to the command's help and exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf formats a usageError.
func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// markUsageErrors makes the errors of cobra's flag parsing and of every
// command's argument check under root usage errors. Run it once the tree
// is complete.
func markUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					if _, ok := err.(*usageError); ok {
						return err
					}
					// cobra's checks count arguments without naming
					// them: the usage line does.
					return usageErrorf("%s: wrong arguments (%v); usage: %s", cmd.CommandPath(), err, cmd.UseLine())
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// unknownCommand is the root's argument check: the root takes no
// arguments, so one is a command that does not exist.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default, set only on its path
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &usageError{err: fmt.Errorf("%s", msg)}
}
