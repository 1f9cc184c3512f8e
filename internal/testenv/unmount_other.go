//go:build !linux

package testenv

// unmountUnder: the stand-in mounts nothing off Linux.
func unmountUnder(string) {}
