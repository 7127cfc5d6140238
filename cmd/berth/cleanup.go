//go:build linux

package main

import (
	"fmt"
	"os"

	"github.com/berthproject/berth/agent"
	"github.com/spf13/cobra"
)

// cleanupFlags are berth agent --cleanup and what goes with it.
type cleanupFlags struct {
	run, images, volumes bool
}

func (f *cleanupFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.run, "cleanup", false, "instead of running the agent, remove what it left on this machine: its containers, its network (veths, namespaces, overlay device, nftables table) and its data dir; the agent must be stopped. Give the --name and --data-dir it ran with")
	cmd.Flags().BoolVar(&f.images, "images", false, "with --cleanup: also remove the images of --containerd-namespace")
	cmd.Flags().BoolVar(&f.volumes, "volumes", false, "with --cleanup: also remove the node's named volumes (kept by default, in DATA_DIR/volumes)")
}

// runCleanup is berth agent --cleanup: it prints each thing it removed.
func (f *agentFlags) runCleanup(cmd *cobra.Command) error {
	name := f.name
	if name == "" {
		name, _ = os.Hostname()
	}
	dataDir := f.dataDir
	if dataDir == "" {
		dataDir = defaultDataDir("agent-" + name)
	}
	out := cmd.OutOrStdout()
	removed := 0
	err := agent.Cleanup(cmd.Context(), agent.CleanupConfig{
		Name: name, DataDir: dataDir,
		ContainerdAddress: f.containerdAddr, ContainerdNamespace: f.namespace,
		Images: f.cleanup.images, Volumes: f.cleanup.volumes,
		Removed: func(what string) {
			removed++
			fmt.Fprintln(out, "removed", what)
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "node %s is clean (%d removed); berth node rm %s removes it from the cluster\n", name, removed, name)
	return nil
}

// newUninstallCommand is berth uninstall, another name for berth agent
// --cleanup.
func newUninstallCommand() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what a stopped agent left on this machine (berth agent --cleanup)",
		Long: `Remove what the agent of this machine left: its containers (killed, with
their snapshots, logs and secret mounts), its container network (veths,
network namespaces, the VXLAN device, its nftables table, CNI state) and its
data dir, but for named volumes unless --volumes. Refused while an agent runs
on the data dir. The same as berth agent --cleanup.`,
		Example: `  systemctl stop berth-agent && berth uninstall --name node-2`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.runCleanup(cmd)
		},
	}
	cmd.Flags().StringVar(&f.name, "name", "", "the node's name, as the agent ran with it (default: the hostname)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "the agent's data dir (default /var/lib/berth/agent-NAME)")
	cmd.Flags().StringVar(&f.containerdAddr, "containerd-address", "", "unix socket of containerd (default /run/containerd/containerd.sock)")
	cmd.Flags().StringVar(&f.namespace, "containerd-namespace", "berth", "containerd namespace of the node's containers and images")
	cmd.Flags().BoolVar(&f.cleanup.images, "images", false, "also remove the images of --containerd-namespace")
	cmd.Flags().BoolVar(&f.cleanup.volumes, "volumes", false, "also remove the node's named volumes (kept by default, in DATA_DIR/volumes)")
	return cmd
}
