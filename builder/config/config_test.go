package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/version"
)

func TestMissingFileGivesDefaults(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	if c.CPUs != d.CPUs || c.MemoryBytes != 8<<30 || c.Port != 2222 || c.Store != StoreVolume || c.MaxJobs != c.CPUs {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(`
cpus = 6
memory = "12GiB"
port = 2345
systems = ["aarch64-linux", "x86_64-linux"]
supported-features = ["big-parallel"]
store = "directory"
store-size-cap = "50G"
use-substitutes = false
start-timeout = "90s"
notify-after = "2m"
`), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.CPUs != 6 || c.MemoryBytes != 12<<30 || c.Port != 2345 || len(c.Systems) != 2 || c.Store != StoreDirectory ||
		c.StoreSizeCap != 50<<30 || c.UseSubstitutes || c.StartTimeout != 90*time.Second || c.NotifyAfter != 2*time.Minute {
		t.Fatalf("unexpected: %+v", c)
	}
	if c.MaxJobs != 6 {
		t.Fatalf("max-jobs should follow cpus when unset, got %d", c.MaxJobs)
	}
}

func TestBadValuesNameFileKeyAndAllowed(t *testing.T) {
	cases := []struct{ body, key, allowed string }{
		{`cpus = 0`, "cpus", "1 to 64"},
		{`cpus = "four"`, "cpus", "1 to 64"},
		{`memory = "8"`, "memory", "unit"},
		{`memory = "8X"`, "memory", "unit"},
		{`memory = 8`, "memory", "unit"},
		{`memory = "100MiB"`, "memory", "1GiB"},
		{`port = 80`, "port", "1024 to 65535"},
		{`systems = ["mips-linux"]`, "systems", "aarch64-linux"},
		{`systems = []`, "systems", "non-empty"},
		{`store = "nfs"`, "store", `"volume"`},
		{`volume = "bad/name"`, "volume", "volume name"},
		{`image = "Has Spaces"`, "image", "image reference"},
		{`image-archive = "relative.tar"`, "image-archive", "absolute path"},
		{`use-substitutes = "yes"`, "use-substitutes", "true or false"},
		{`start-timeout = "1s"`, "start-timeout", "10s"},
		{`notify-after = "-1s"`, "notify-after", `"0s" (never)`},
		{`notify-after = 60`, "notify-after", "24h"},
		{`supported-features = ["Big Parallel"]`, "supported-features", "lower-case"},
		{`container-cli = "container"`, "container-cli", "/usr/local/bin/container"},
		{`container-cli = "/nonexistent/container"`, "container-cli", "no such file"},
		{`container-cli = "/"`, "container-cli", "not a regular file"},
		{`container-cli = "/etc/passwd"`, "container-cli", "not executable"},
		{`store-size-cap = "1PiB"`, "store-size-cap", `"512GiB"`}, // more than the store volume holds
		{`store-size-cap = "600GiB"`, "store-size-cap", "the store volume's size"},
		{`cpu = 4`, "cpu", "cpus"}, // unknown key: the fix lists the known ones
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			_, err := Parse([]byte(tc.body+"\n"), "/home/u/.config/wrapix/config.toml")
			if err == nil {
				t.Fatal("accepted")
			}
			if problem.KindOf(err) != problem.Config || problem.ExitCode(err) != 3 {
				t.Fatalf("kind %v", problem.KindOf(err))
			}
			msg := err.Error()
			for _, want := range []string{"/home/u/.config/wrapix/config.toml", `"` + tc.key + `"`, tc.allowed} {
				if !strings.Contains(msg, want) {
					t.Errorf("%q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("not one line: %q", msg)
			}
		})
	}
}

func TestSyntaxErrorNamesFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(f, []byte("cpus = = 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(f)
	if err == nil || !strings.Contains(err.Error(), f) || problem.KindOf(err) != problem.Config {
		t.Fatalf("got %v", err)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"8G": 8 << 30, "8GiB": 8 << 30, "512MiB": 512 << 20, "1t": 1 << 40, "64 KiB": 64 << 10} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"8", "", "G", "8Q", "-1G", "99999999999999999999P"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	if HumanSize(1536<<20) != "1.5 GiB" || HumanSize(512) != "512 B" {
		t.Error("HumanSize")
	}
}

// container-cli: an absolute path to an executable overrides the search.
func TestContainerCLIKey(t *testing.T) {
	c, err := Parse([]byte(`container-cli = "/bin/sh"`+"\n"), "config.toml")
	if err != nil || c.ContainerCLI != "/bin/sh" {
		t.Fatalf("%+v %v", c, err)
	}
	if c := Defaults(); c.ContainerCLI != "" {
		t.Fatal("the default must search, not name a path")
	}
}

func TestContainerPortAndIdleStop(t *testing.T) {
	for _, tc := range []struct {
		text        string
		port, cport int
		idle        time.Duration
		wantErr     string
	}{
		{"", 2222, 2223, 30 * time.Minute, ""},
		{"port = 3000\n", 3000, 3001, 30 * time.Minute, ""},
		{"port = 65535\n", 65535, 65534, 30 * time.Minute, ""},
		{"port = 3000\ncontainer-port = 4000\nidle-stop = \"2h\"\n", 3000, 4000, 2 * time.Hour, ""},
		{"idle-stop = \"0\"\n", 2222, 2223, 0, ""},
		{"idle-stop = 0\n", 2222, 2223, 0, ""},
		{"port = 3000\ncontainer-port = 3000\n", 0, 0, 0, `"container-port": 3000 is the same as port`},
		{"idle-stop = \"5\"\n", 0, 0, 0, `key "idle-stop": "5" is not allowed`},
		{"idle-stop = \"48h\"\n", 0, 0, 0, `key "idle-stop"`},
		{"image-flake = \"github:x/y#builder-image\"\n", 0, 0, 0, `key "image-flake"`},
	} {
		c, err := Parse([]byte(tc.text), "config.toml")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.text, err, tc.wantErr)
			}
			continue
		}
		if err != nil || c.Port != tc.port || c.ContainerPort != tc.cport || c.IdleStop != tc.idle {
			t.Errorf("%q: %v port %d container-port %d idle-stop %s", tc.text, err, c.Port, c.ContainerPort, c.IdleStop)
		}
	}
}

// Issue 15: each release runs its own image, so an upgrade's entrypoint
// reaches the user; an explicit image = … keeps winning.
func TestDefaultImageFollowsTheVersion(t *testing.T) {
	saved := version.Version
	t.Cleanup(func() { version.Version = saved })
	version.Version = "7.8.9"
	c, err := Parse(nil, "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Image != "wrapix-builder:7.8.9" {
		t.Errorf("default image %q, want wrapix-builder:7.8.9", c.Image)
	}
	// The default is an image reference config.toml would accept too.
	if _, err := Parse([]byte(`image = "`+c.Image+`"`), "config.toml"); err != nil {
		t.Errorf("the default image is not a valid image = value: %v", err)
	}
	c, err = Parse([]byte(`image = "example/builder:pinned"`), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Image != "example/builder:pinned" {
		t.Errorf("configured image %q replaced by %q", "example/builder:pinned", c.Image)
	}
}
