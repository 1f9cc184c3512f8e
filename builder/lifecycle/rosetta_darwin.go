package lifecycle

import "syscall"

// hostRosetta: hw.optional.arm64 is 1 on Apple silicon, also for a process
// that Rosetta itself translates; Intel Macs lack the key.
func hostRosetta(configFile string) error {
	v, err := syscall.Sysctl("hw.optional.arm64")
	return rosettaOn(err == nil && len(v) > 0 && v[0] == 1, RosettaRuntime, configFile)
}
