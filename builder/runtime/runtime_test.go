package runtime

import (
	"github.com/wrapix/wrapix-builder/builder/version"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseVersion(t *testing.T) {
	cases := map[string]string{
		"container CLI version 1.2.2 (build: release, commit: af405ff)\n":                "1.2.2",
		"container CLI version 0.1.0 (build: release, commit: 0fd8692, sdk: MacOS 15)\n": "0.1.0",
		"container CLI version 1.2.2-1-gaf405ffd (build: debug, commit: unspeci…)":       "1.2.2-1-gaf405ffd",
		"container CLI version 0.6.0 (build: release, commit: unspecified)\n":            "0.6.0", // no sdk field (ReleaseVersion.swift, 0.5.0 on)
	}
	for in, want := range cases {
		v, err := ParseVersion(in)
		if err != nil || v.Raw != want {
			t.Errorf("ParseVersion(%q) = %v, %v", in, v, err)
		}
	}
	if _, err := ParseVersion("zsh: command not found: container"); err == nil {
		t.Error("accepted garbage")
	}
	v, _ := ParseVersion("container CLI version 0.11.3 (build: release, commit: x)")
	if v.HasCapAdd() || v.HasVolumeOpts() || !v.HasInitFlag() || !v.HasProgressFlag() {
		t.Errorf("gates wrong for 0.11.3: %+v", v)
	}
	v, _ = ParseVersion("container CLI version 1.0.0 (build: release, commit: x)")
	if !v.HasCapAdd() || !v.AtLeast(0, 12, 0) || v.AtLeast(1, 0, 1) {
		t.Error("AtLeast wrong")
	}
}

func load(t *testing.T, name string) []Container {
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ParseContainers(data)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestParseBothJSONGenerations(t *testing.T) {
	cases := []struct {
		file, shape, ip string
		started         time.Time
	}{
		{"ls-1.2.2-running.json", "1.x", "192.168.64.5", time.Date(2026, 8, 10, 9, 12, 47, 0, time.UTC)},
		{"ls-0.12.0-running.json", "0.x", "192.168.64.5", appleEpoch.Add(time.Duration(776510967.41 * float64(time.Second)))},
		{"ls-0.5.0-running.json", "0.x", "192.168.64.3", time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			cs := load(t, tc.file)
			c := cs[0]
			if c.ID != "wrapix-builder" || c.State != StateRunning || c.Shape != tc.shape || c.IP != tc.ip || !c.StartedAt.Equal(tc.started) {
				t.Fatalf("got %+v", c)
			}
			pp, ok := c.PublishedTo(22)
			if !ok || pp.HostAddress != "127.0.0.1" || pp.HostPort != 2222 {
				t.Fatalf("port %+v", pp)
			}
		})
	}
	c := load(t, "ls-1.2.2-running.json")[0]
	if m, ok := c.MountAt("/wrapix/store"); !ok || m.Type != "volume" || m.VolumeName != "wrapix-builder-nix" {
		t.Errorf("store mount %+v", m)
	}
	if m, ok := c.MountAt("/wrapix/keys"); !ok || !m.ReadOnly || m.Type != "virtiofs" {
		t.Errorf("keys mount %+v", m)
	}
	if c.Image != "docker.io/library/wrapix-builder:latest" || c.Labels["org.wrapix.builder"] != "1" || c.Memory != 8<<30 {
		t.Errorf("config %+v", c)
	}
	stopped := load(t, "ls-1.2.2-stopped.json")[0]
	if stopped.Running() || stopped.IP != "" {
		t.Errorf("stopped %+v", stopped)
	}
}

func TestParseGarbage(t *testing.T) {
	for _, in := range []string{`{"id":"x"}`, `[{"id":"x","status":{"state":`, `<html>`, `[{"id":"x"}]`} {
		if _, err := ParseContainers([]byte(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
	if cs, err := ParseContainers([]byte("  \n")); err != nil || len(cs) != 0 {
		t.Error("empty output should be no containers")
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]ErrClass{
		"Error: internalError: \"failed to list containers\" (cause: \"interrupted: \"XPC connection error: Connection invalid\"\")\nEnsure container system service has been started with `container system start`.": ErrAPIServerDown,
		"Error: XPC timeout for request to com.apple.container.apiserver/containerList":                                                     ErrAPIServerHang,
		"Error: container with id wrapix-builder already exists":                                                                            ErrAlreadyExists,
		"Error: exists: \"container with id wrapix-builder already exists\"":                                                                ErrAlreadyExists,
		"Error: internalError: \"failed to delete container\" (cause: \"notFound: \"container with ID x not found\"\")":                     ErrNotFound,
		"Error: internalError: \"failed to delete container\" (cause: \"invalidState: \"container x is running and can not be deleted\"\")": ErrRunningCannotDelete,
		"Error: container x is not running":                                                                                                 ErrNotRunning,
		"Error: volume 'v' is currently in use and cannot be accessed by another container, or deleted":                                     ErrVolumeBusy,
		"Error: default kernel not configured for architecture arm64, please use the `container system kernel set` command":                 ErrKernelMissing,
		"Error: something else entirely":                                                                                                    ErrOther,
	}
	for in, want := range cases {
		if got := Classify(in, 1); got != want {
			t.Errorf("Classify(%q) = %v, want %v", in, got, want)
		}
	}
	if Classify("Error: Unknown option '--cap-add'\nUsage: …", 64) != ErrUsage {
		t.Error("exit 64")
	}
}

// The error texts of each version, as Apple's sources print them (see the
// stand-in for the per-version source notes); each must be classified by its
// code where it has one.
func TestClassifyPerVersionTexts(t *testing.T) {
	cases := []struct {
		version, stderr string
		want            ErrClass
	}{
		{"0.6–0.8 image inspect", "Error: notFound: \"images: wrapix-builder:latest\"\n", ErrNotFound},
		{"0.9–0.12 image inspect", "wrapix-builder:latest: Image not found\nError: InspectError(succeeded: [], failed: [(\"wrapix-builder:latest\", notFound: \"Image not found\")])\n", ErrNotFound},
		{"1.x image inspect", "Error: image not found: wrapix-builder:latest\n", ErrNotFound},
		{"0.6–0.9 delete missing", "Error: notFound: \"failed to delete one or more containers: [\"wrapix-builder\"]\"\n", ErrNotFound},
		{"0.6–0.7 volume create existing", "Error: invalidArgument: \"Volume 'v' already exists\"\n", ErrAlreadyExists},
		{"0.10 delete running", "Error: invalidState: \"container is running\"\n", ErrRunningCannotDelete},
		{"0.9 exists", "Error: exists: \"container with id wrapix-builder already exists\"\n", ErrAlreadyExists},
		{"0.6–0.9 apiserver down", "Error: interrupted: \"internalError: \"failed to list containers\" (cause: \"interrupted: \"XPC connection error: Connection invalid\"\")\nEnsure container system service has been started with `container system start`.\"\n", ErrAPIServerDown},
		{"0.6–0.9 delete running", "2026-01-05T10:00:00+0000 error container : failed to delete container wrapix-builder: invalidState: \"container is running\"\nError: internalError: \"delete failed for one or more containers: [\"wrapix-builder\"]\"\n", ErrRunningCannotDelete},
		{"1.x kill stopped", "Error: internalError: \"failed to kill container\" (cause: \"invalidState: \"no runtime client exists: container is stopped\"\")\n", ErrOther},
	}
	for _, tc := range cases {
		if got := Classify(tc.stderr, 1); got != tc.want {
			t.Errorf("%s: Classify(%q) = %v, want %v", tc.version, tc.stderr, got, tc.want)
		}
	}
}

// ArgumentParser exits 64 for any usage or validation error: the message must
// not claim an unknown flag when the value was the problem.
func TestUsageErrorIsNotAlwaysAFlag(t *testing.T) {
	stderr := "Error: The value 'x' is invalid for '--cpus <cpus>'\nUsage: container run [<options>] <image> ...\n"
	err := asProblem(newCLIError([]string{"run"}, 64, stderr))
	if !IsClass(err, ErrUsage) || strings.Contains(err.Error(), "rejected a flag") || !strings.Contains(err.Error(), "is invalid for '--cpus") {
		t.Errorf("usage error: %v", err)
	}
	err = asProblem(newCLIError([]string{"run"}, 64, "Error: Unknown option '--cap-add'\nUsage: …"))
	if !strings.Contains(err.Error(), "rejected a flag") {
		t.Errorf("unknown flag: %v", err)
	}
}

func TestRunArgsGatedByVersion(t *testing.T) {
	spec := RunSpec{Name: "wrapix-builder", Image: version.Image(), Labels: map[string]string{"b": "2", "a": "1"}, HostPort: 2222, CPUs: 4, MemoryBytes: 6 << 30,
		Mounts: []MountSpec{{Source: "wrapix-builder-nix", Target: "/nix"}, {Source: "/Users/o'brien/keys", Target: "/wrapix/keys", ReadOnly: true}}, FullProc: true}
	v12, _ := ParseVersion("container CLI version 1.2.2 (build: release, commit: x)")
	args, err := RunArgs(v12, spec)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	want := "run --detach --name wrapix-builder --label a=1 --label b=2 --publish 127.0.0.1:2222:22/tcp --cpus 4 --memory 6G " +
		"--volume wrapix-builder-nix:/nix --volume /Users/o'brien/keys:/wrapix/keys:ro --masked-path NONE --read-only-path NONE --progress none " + version.Image()
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	v06, _ := ParseVersion("container CLI version 0.6.0 (build: release, commit: x)")
	args, _ = RunArgs(v06, spec)
	if slices.Contains(args, "--masked-path") || slices.Contains(args, "--progress") {
		t.Errorf("0.6.0 got flags it does not know: %v", args)
	}
	// The mask opt-out exists from 1.2.1 only (Flags.swift); no capability is ever added.
	for _, raw := range []string{"0.12.0", "1.2.0"} {
		v, _ := ParseVersion("container CLI version " + raw + " (build: release, commit: x)")
		args, _ = RunArgs(v, spec)
		if slices.Contains(args, "--masked-path") || slices.Contains(args, "--read-only-path") || slices.Contains(args, "--cap-add") {
			t.Errorf("%s: %v", raw, args)
		}
	}
	if v, _ := ParseVersion("container CLI version 1.2.0 (build: release, commit: x)"); !v.SandboxUnavailable() {
		t.Error("1.2.0 masks /proc with no opt-out")
	}
	if v, _ := ParseVersion("container CLI version 1.2.1 (build: release, commit: x)"); v.SandboxUnavailable() {
		t.Error("1.2.1 has the opt-out")
	}
	spec.Mounts[1].Source = "/Users/a:b/keys"
	args, _ = RunArgs(v12, spec)
	if !slices.Contains(args, "type=virtiofs,source=/Users/a:b/keys,target=/wrapix/keys,readonly") {
		t.Errorf("':' path must use --mount: %v", args)
	}
	spec.Mounts[1].Source = "/Users/a:b,c/keys"
	if _, err := RunArgs(v12, spec); err == nil {
		t.Error("a path with ':' and ',' cannot be mounted and must be refused")
	}
}

func TestMemoryArgAlwaysHasUnit(t *testing.T) {
	for n, want := range map[int64]string{8 << 30: "8G", 1536 << 20: "1536M", 1<<30 + 1024: "1048577K"} {
		if got := MemoryArg(n); got != want {
			t.Errorf("MemoryArg(%d) = %s, want %s", n, got, want)
		}
	}
}

// x86_64-linux: `--rosetta` from 0.7.0 (Flags.swift); an older CLI would exit
// 64 on it, so RunArgs refuses with the version to upgrade to instead.
func TestRunArgsRosetta(t *testing.T) {
	spec := RunSpec{Name: "wrapix-builder", Image: version.Image(), HostPort: 2222, CPUs: 4, MemoryBytes: 6 << 30}
	for _, raw := range []string{"0.7.0", "0.12.0", "1.2.2"} {
		v, _ := ParseVersion("container CLI version " + raw + " (build: release, commit: x)")
		args, _ := RunArgs(v, spec)
		if slices.Contains(args, "--rosetta") {
			t.Errorf("%s: --rosetta without x86_64-linux: %v", raw, args)
		}
		spec.Rosetta = true
		args, err := RunArgs(v, spec)
		spec.Rosetta = false
		if err != nil || !slices.Contains(args, "--rosetta") || args[len(args)-1] != spec.Image {
			t.Errorf("%s: %v %v", raw, args, err)
		}
	}
	spec.Rosetta = true
	v06, _ := ParseVersion("container CLI version 0.6.0 (build: release, commit: x)")
	_, err := RunArgs(v06, spec)
	if err == nil || !strings.Contains(err.Error(), "0.7.0 or newer") || !strings.Contains(err.Error(), "0.6.0") {
		t.Fatalf("0.6.0 with Rosetta: %v", err)
	}
}
