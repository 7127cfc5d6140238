package main

import "github.com/berthproject/berth/agent/runtime/jsonlog"

// runLogDriverIfAsked makes this process a container's log driver when a
// containerd shim started it as one (see jsonlog.RunDriverIfAsked).
func runLogDriverIfAsked() { jsonlog.RunDriverIfAsked() }
