package runtime

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is the container CLI's version, from `container --version`.
type Version struct {
	Major, Minor, Patch int
	Raw                 string // the version word as printed, e.g. "1.2.2"
}

// MinVersion is the oldest CLI we drive: it has named volumes that are
// created on demand, `volume create`, `-p host-ip:…`, and `ls --all --format json`.
var MinVersion = Version{0, 6, 0, "0.6.0"}

var versionRe = regexp.MustCompile(`(?m)^container CLI version (\S+)`)

// ParseVersion reads the first line of `container --version`, e.g.
// "container CLI version 1.2.2 (build: release, commit: af405ff)".
func ParseVersion(out string) (Version, error) {
	m := versionRe.FindStringSubmatch(out)
	if m == nil {
		return Version{}, fmt.Errorf("unexpected `container --version` output %q", firstLine(out))
	}
	raw := m[1]
	core, _, _ := strings.Cut(raw, "-") // "1.2.2-1-gaf405ffd" → "1.2.2"
	parts := strings.Split(core, ".")
	nums := make([]int, 3)
	for i := 0; i < 3 && i < len(parts); i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return Version{}, fmt.Errorf("unexpected version %q in `container --version` output", raw)
		}
		nums[i] = n
	}
	return Version{nums[0], nums[1], nums[2], raw}, nil
}

// AtLeast reports v >= major.minor.patch.
func (v Version) AtLeast(major, minor, patch int) bool {
	if v.Major != major {
		return v.Major > major
	}
	if v.Minor != minor {
		return v.Minor > minor
	}
	return v.Patch >= patch
}

func (v Version) String() string {
	if v.Raw != "" {
		return v.Raw
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Flags gated on the CLI version (apple-container.md §7.1). Older CLIs exit 64
// on an unknown flag, so we only pass what the detected version knows.
func (v Version) HasProgressFlag() bool  { return v.AtLeast(0, 7, 0) }
func (v Version) HasInitFlag() bool      { return v.AtLeast(0, 10, 0) }
func (v Version) HasStatusFormat() bool  { return v.AtLeast(0, 10, 0) }
func (v Version) HasSystemTimeout() bool { return v.AtLeast(0, 10, 0) }
func (v Version) HasCapAdd() bool        { return v.AtLeast(0, 12, 0) }
func (v Version) HasVolumeOpts() bool    { return v.AtLeast(0, 12, 0) }

// RosettaVersion is the first CLI with `run --rosetta` (Flags.swift,
// "Enable Rosetta in the container", new in 0.7.0). Before it Rosetta came
// only with an amd64 image (`--arch amd64`, Utility.swift), never for ours.
var RosettaVersion = Version{0, 7, 0, "0.7.0"}

func (v Version) HasRosettaFlag() bool { return v.AtLeast(0, 7, 0) }

// RunDeletesFailedContainer: from 0.9 `run` deletes the container it created
// when its start fails (ContainerRun.swift); before, the container stays.
func (v Version) RunDeletesFailedContainer() bool { return v.AtLeast(0, 9, 0) }

// MasksProc: from 1.2.0 the runtime applies the OCI default masked and
// read-only /proc and /sys paths (containerization LinuxContainer.swift
// defaultMaskedPaths, applied by vminitd's vmexec; kept by container's
// RuntimeService.swift). The kernel then refuses the fresh /proc mount the
// Nix sandbox makes ("mounting /proc: Operation not permitted").
func (v Version) MasksProc() bool { return v.AtLeast(1, 2, 0) }

// HasMaskOptOut: `--masked-path NONE --read-only-path NONE` clear those
// defaults from 1.2.1 on (Flags.swift, Parser.swift pathOverrides).
func (v Version) HasMaskOptOut() bool { return v.AtLeast(1, 2, 1) }

// SandboxUnavailable: 1.2.0 masks /proc with no way out, so the builder
// runs without the Nix sandbox there (and says so: status, doctor, menu).
func (v Version) SandboxUnavailable() bool { return v.MasksProc() && !v.HasMaskOptOut() }

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
