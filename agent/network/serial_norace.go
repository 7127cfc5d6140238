//go:build !race

package network

// serializePlugins: see serial_race.go.
const serializePlugins = false
