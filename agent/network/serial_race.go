//go:build race

package network

// serializePlugins is set in race-detector builds: there go-cni guards
// itself with a deadlock detector that cannot tell goroutines apart on
// current Go releases and aborts the process on two calls at once. Release
// builds run plugins in parallel; they serialize on the IPAM and xtables
// locks where they must.
const serializePlugins = true
