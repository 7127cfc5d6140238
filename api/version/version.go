// Package version holds the version Berth was built as.
package version

import "runtime/debug"

// Version is set at build time with -ldflags; it falls back to the module's
// build information.
var Version = ""

// String returns the version of this build.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
