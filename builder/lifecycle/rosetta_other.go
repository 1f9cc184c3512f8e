//go:build !darwin

package lifecycle

import goruntime "runtime"

// hostRosetta: off macOS (the tests' stand-in for Apple's runtime) an
// x86_64 host runs x86_64 binaries natively, which is what Rosetta gives
// the Mac's arm64 guest; any other host cannot.
func hostRosetta(configFile string) error {
	if goruntime.GOARCH == "amd64" {
		return nil
	}
	return rosettaOn(false, RosettaRuntime, configFile)
}
