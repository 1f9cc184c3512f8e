package lifecycle

import (
	"errors"
	"io/fs"
	"os"
	"slices"

	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/runtime"
)

// X86System is the system the builder offers only through Rosetta.
const X86System = "x86_64-linux"

// RosettaRuntime is a file the Rosetta package installs (`softwareupdate
// --install-rosetta`); without Rosetta the runtime would try to install it
// itself, behind a licence prompt no background start can answer
// (containerization VZVirtualMachineInstance.swift, prestart).
const RosettaRuntime = "/Library/Apple/usr/libexec/oah/libRosettaRuntime"

// InstallRosetta is how the user installs Rosetta.
const InstallRosetta = "softwareupdate --install-rosetta --agree-to-license"

// NoRosettaWarning: x86_64-linux was configured while the builder ran
// without it; start leaves a running builder alone, so a restart is needed.
const NoRosettaWarning = "the running builder has no Rosetta (x86_64-linux was configured after it started): x86_64-linux builds fail with \"Exec format error\""

// RestartFix recreates the container with the current settings.
const RestartFix = "`wrapix-builder stop && wrapix-builder start` (the store is kept)"

// WantsRosetta: x86_64-linux is configured, so the container gets Rosetta.
// Off otherwise: aarch64-linux alone never asks for it.
func (b *Builder) WantsRosetta() bool {
	return slices.Contains(b.Config.Systems, X86System)
}

// RosettaProblem says why x86_64-linux builds cannot run with container CLI
// v on this host, or nil when they can or are not configured.
func (b *Builder) RosettaProblem(v runtime.Version) error {
	if !b.WantsRosetta() {
		return nil
	}
	if !v.HasRosettaFlag() {
		return problem.Newf(problem.Runtime,
			"upgrade Apple's container CLI to "+runtime.RosettaVersion.String()+" or newer (https://github.com/apple/container/releases), or remove x86_64-linux from systems in "+b.Layout.ConfigFile(),
			"x86_64-linux builds need `container run --rosetta`, which container %s does not have", v)
	}
	return hostRosetta(b.Layout.ConfigFile())
}

// rosettaOn decides for a host: appleSilicon, and the Rosetta runtime file
// at runtimeFile (stat'ed here).
func rosettaOn(appleSilicon bool, runtimeFile, configFile string) error {
	if !appleSilicon {
		return problem.Newf(problem.Config, "remove x86_64-linux from systems in "+configFile,
			"x86_64-linux builds need Rosetta, which only Apple-silicon Macs have")
	}
	if _, err := os.Stat(runtimeFile); errors.Is(err, fs.ErrNotExist) {
		return problem.Newf(problem.Config, "install it: `"+InstallRosetta+"` (or remove x86_64-linux from systems in "+configFile+")",
			"x86_64-linux builds need Rosetta, which is not installed (no %s)", runtimeFile)
	} else if err != nil {
		return problem.Wrap(problem.Internal, err, "cannot check for Rosetta", "")
	}
	return nil
}
