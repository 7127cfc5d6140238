//go:build !linux

package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// The server and the agent drive etcd, containerd, netlink and nftables,
// which exist on Linux only: elsewhere berth is the CLI, and these
// commands say so instead of being unknown.

func newDevCommand() *cobra.Command {
	return linuxOnly("dev", "Run a one-machine cluster (Linux only)")
}

func newServerCommand() *cobra.Command {
	return linuxOnly("server", "Run the control plane (Linux only)")
}

func newAgentCommand() *cobra.Command {
	return linuxOnly("agent", "Run a node agent (Linux only)")
}

func newUninstallCommand() *cobra.Command {
	return linuxOnly("uninstall", "Remove what a stopped agent left on this machine (Linux only)")
}

func linuxOnly(name, short string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              short,
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("berth %s runs on Linux only; this berth (%s/%s) is the CLI: run the %s on a Linux machine and point this CLI at it (berth context)", name, runtime.GOOS, runtime.GOARCH, name)
		},
	}
}

func newSnapshotRestoreCommand() *cobra.Command {
	return linuxOnly("restore", "Make a server's data dir from a snapshot (Linux only)")
}

// runLogDriverIfAsked does nothing: containers run on Linux only.
func runLogDriverIfAsked() {}
