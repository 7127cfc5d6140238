package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newCompletionCommand is "berth completion SHELL": the script that makes
// a shell complete berth's commands, flags and arguments. Arguments that
// name cluster objects (apps, services, nodes, tasks, contexts) are
// completed by asking the cluster, briefly and silently.
func newCompletionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish",
		Long: `Print a script that makes your shell complete berth's commands and flags,
and the names of apps, services (APP/SERVICE), nodes, tasks and contexts,
which it asks the cluster for (it waits at most ` + completionTimeout.String() + ` and stays quiet
when the cluster does not answer).

bash (needs the bash-completion package):
  echo 'source <(berth completion bash)' >> ~/.bashrc

zsh:
  berth completion zsh > "${fpath[1]}/_berth"
  # or, when completion is not enabled yet, in ~/.zshrc:
  #   autoload -U compinit; compinit
  #   source <(berth completion zsh)

fish:
  berth completion fish > ~/.config/fish/completions/berth.fish`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, w := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(w, true)
			case "zsh":
				return root.GenZshCompletion(w)
			case "fish":
				return root.GenFishCompletion(w, true)
			}
			return usageErrorf("no completion for shell %q: use bash, zsh or fish", args[0])
		},
	}
}

// completionError is what a completion function does with an error: nothing
// the user sees, since a shell prints whatever comes back; cobra logs it
// to $BASH_COMP_DEBUG_FILE when that is set.
func completionError(err error) ([]string, cobra.ShellCompDirective) {
	cobra.CompDebugln(fmt.Sprintf("berth completion: %v", err), false)
	return nil, cobra.ShellCompDirectiveNoFileComp
}
