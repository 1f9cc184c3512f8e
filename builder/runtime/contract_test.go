package runtime_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/runtime"
	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// contractVersions are the CLI versions whose answers differ (Apple's
// sources, tags 0.6.0 … 1.2.2): error codes vs LocalizedError messages
// (0.10), image inspect (0.9, 1.0), delete/stop/kill of a missing container
// (0.10, 0.11), run's cleanup (0.9), image load's header (1.0).
var contractVersions = []string{"0.6.0", "0.7.0", "0.8.0", "0.9.0", "0.10.0", "0.11.0", "0.12.0", "1.0.0", "1.2.2"}

// The runtime adapter against the stand-in in record mode, per version: each
// answer is classified by its error code or by a listing, never by luck.
func TestCLIContractPerVersion(t *testing.T) {
	for _, v := range contractVersions {
		t.Run(v, func(t *testing.T) {
			testenv.New(t)
			t.Setenv("CONTAINER_STANDIN_VERSION", v)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cli := runtime.New("container")

			// A missing image is "not loaded", not a failure (0.6–0.8 print only the code).
			if ok, err := cli.ImageExists(ctx, "wrapix-test:latest"); ok || err != nil {
				t.Errorf("ImageExists(missing) = %v, %v", ok, err)
			}
			if ok, err := cli.ImageExists(ctx, version.Image()); !ok || err != nil {
				t.Fatalf("ImageExists(present) = %v, %v", ok, err)
			}
			// image load: only references, never the pre-1.0 "Loaded images:" header.
			refs, err := cli.ImageLoad(ctx, testenv.OCIArchive(t, "wrapix-test:latest"))
			if err != nil || !slices.Equal(refs, []string{"wrapix-test:latest"}) {
				t.Errorf("ImageLoad = %q, %v", refs, err)
			}
			if ok, err := cli.ImageExists(ctx, "wrapix-test:latest"); !ok || err != nil {
				t.Errorf("ImageExists(after load) = %v, %v", ok, err)
			}
			// The listing and deletion an upgrade uses to drop the older
			// release's image (issue 15): exact references, sorted.
			if got, err := cli.ImageList(ctx); err != nil || !slices.Equal(got, []string{version.Image(), "wrapix-test:latest"}) {
				t.Errorf("ImageList = %q, %v", got, err)
			}
			if err := cli.ImageDelete(ctx, "wrapix-test:latest"); err != nil {
				t.Errorf("ImageDelete: %v", err)
			}
			if got, err := cli.ImageList(ctx); err != nil || !slices.Equal(got, []string{version.Image()}) {
				t.Errorf("ImageList after delete = %q, %v", got, err)
			}
			if err := cli.ImageDelete(ctx, "wrapix-test:latest"); err == nil {
				t.Errorf("ImageDelete(missing) succeeded")
			}
			// A missing archive is named, whether the CLI says so on stdout (before 1.0) or stderr.
			missing := filepath.Join(t.TempDir(), "no-such-image.tar")
			if _, err := cli.ImageLoad(ctx, missing); err == nil || !strings.Contains(strings.ToLower(err.Error()), "does not exist") {
				t.Errorf("ImageLoad(missing file) = %v, want the CLI's reason", err)
			}

			// Stop, kill and delete of a missing container succeed, whatever the version prints.
			if err := cli.Stop(ctx, "nope", time.Second); err != nil {
				t.Errorf("Stop(missing): %v", err)
			}
			if err := cli.Kill(ctx, "nope"); err != nil {
				t.Errorf("Kill(missing): %v", err)
			}
			if err := cli.Delete(ctx, "nope"); err != nil {
				t.Errorf("Delete(missing): %v", err)
			}

			// The store volume: created once, then found in the listing.
			for i, want := range []bool{true, false} {
				if created, err := cli.VolumeEnsure(ctx, "wrapix-test-nix"); created != want || err != nil {
					t.Fatalf("VolumeEnsure #%d = %v, %v", i+1, created, err)
				}
			}

			// A run whose start fails leaves no container behind (before 0.9 the CLI keeps it).
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			busy := ln.Addr().(*net.TCPAddr).Port
			spec := runtime.RunSpec{Name: "wrapix-test", Image: version.Image(), HostPort: busy, CPUs: 2, MemoryBytes: 1 << 30,
				Mounts: []runtime.MountSpec{{Source: "wrapix-test-nix", Target: "/wrapix/store"}}}
			if err := cli.Run(ctx, spec); !runtime.IsClass(err, runtime.ErrPortInUse) {
				t.Fatalf("Run on a busy port: %v", err)
			}
			ln.Close()
			if c, err := cli.Get(ctx, "wrapix-test"); c != nil || err != nil {
				t.Errorf("a failed run left %+v (%v)", c, err)
			}
			// …so the same name runs once the port is free.
			spec.HostPort = testenv.FreePort(t)
			if err := cli.Run(ctx, spec); err != nil {
				t.Fatalf("Run after the failed one: %v", err)
			}
			// Delete of a running container is an error, not "already gone".
			if err := cli.Delete(ctx, "wrapix-test"); err == nil {
				t.Fatal("Delete of a running container reported success")
			}
			if err := cli.Stop(ctx, "wrapix-test", time.Second); err != nil {
				t.Fatal(err)
			}
			// A stopped container counts as killed (0.10+ print an invalidState error).
			if err := cli.Kill(ctx, "wrapix-test"); err != nil {
				t.Errorf("Kill(stopped): %v", err)
			}
			if err := cli.Delete(ctx, "wrapix-test"); err != nil {
				t.Fatal(err)
			}
			if c, err := cli.Get(ctx, "wrapix-test"); c != nil || err != nil {
				t.Fatalf("still there after delete: %+v (%v)", c, err)
			}
		})
	}
}

// A failed version probe is not cached: the CLI installed after the first
// probe (or a probe that timed out at login) is found by the next call.
func TestVersionProbedAgainAfterFailure(t *testing.T) {
	w := testenv.New(t)
	bin := testenv.Binaries(t)
	path := filepath.Join(t.TempDir(), "container") // installed only later
	cli := runtime.New(path)
	ctx := context.Background()
	if _, err := cli.Version(ctx); err == nil {
		t.Fatal("a CLI that is not there answered")
	}
	data, err := os.ReadFile(filepath.Join(bin, "container"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := cli.Version(ctx)
	if err != nil || v.String() != "1.2.2" {
		t.Fatalf("after installing the CLI: %v, %v", v, err)
	}
	// A success is cached: the probe does not run again.
	before := len(w.CallsStarting("--version"))
	if _, err := cli.Version(ctx); err != nil || len(w.CallsStarting("--version")) != before {
		t.Fatalf("success not cached: %v, %d → %d calls", err, before, len(w.CallsStarting("--version")))
	}
}

// Volumes per version: `volume inspect` prints the Volume struct before 1.0
// and {id, configuration} from 1.0 (VolumeInspect.swift); both name the
// image file and the size. A missing volume is nil, removing one twice is
// fine, and a volume made again under the same name starts empty.
func TestVolumeContractPerVersion(t *testing.T) {
	for _, v := range contractVersions {
		t.Run(v, func(t *testing.T) {
			w := testenv.New(t)
			t.Setenv("CONTAINER_STANDIN_VERSION", v)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cli := runtime.New("container")
			if info, err := cli.VolumeInspect(ctx, "store"); info != nil || err != nil {
				t.Fatalf("VolumeInspect(missing) = %+v, %v", info, err)
			}
			if _, err := cli.VolumeEnsure(ctx, "store"); err != nil {
				t.Fatal(err)
			}
			info, err := cli.VolumeInspect(ctx, "store")
			want := filepath.Join(w.StandinDir, "volumes", "store", "volume.img")
			if err != nil || info == nil || info.Source != want || info.SizeBytes != 512<<30 {
				t.Fatalf("VolumeInspect = %+v, %v; want source %s, 512 GiB", info, err, want)
			}
			if err := os.WriteFile(info.Source, []byte("old contents"), 0o644); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := cli.VolumeRemove(ctx, "store"); err != nil {
					t.Fatalf("VolumeRemove: %v", err)
				}
			}
			if _, err := cli.VolumeEnsure(ctx, "store"); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(want)
			if err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 64) // the image is a sparse 512 GiB file
			n, _ := f.Read(head)
			f.Close()
			if strings.Contains(string(head[:n]), "old contents") {
				t.Fatal("a volume made again under a removed one's name kept its image")
			}
		})
	}
}

// `run --rosetta` per version: before 0.7.0 the CLI exits 64 on it like on
// every unknown flag; from 0.7.0 it is taken and the container's
// configuration says so, which Get reads back.
func TestRosettaFlagPerVersion(t *testing.T) {
	for _, v := range contractVersions {
		t.Run(v, func(t *testing.T) {
			testenv.New(t)
			t.Setenv("CONTAINER_STANDIN_VERSION", v)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cli := runtime.New("container")
			ver, err := cli.Version(ctx)
			if err != nil {
				t.Fatal(err)
			}
			raw := exec.CommandContext(ctx, "container", "run", "--detach", "--name", "raw", "--rosetta", version.Image())
			out, err := raw.CombinedOutput()
			var ee *exec.ExitError
			if code := 0; errors.As(err, &ee) {
				code = ee.ExitCode()
				if ver.HasRosettaFlag() || code != 64 {
					t.Fatalf("run --rosetta on %s: exit %d\n%s", v, code, out)
				}
				return
			} else if err != nil || !ver.HasRosettaFlag() {
				t.Fatalf("run --rosetta on %s: %v\n%s", v, err, out)
			}
			for _, rosetta := range []bool{true, false} {
				name := "wrapix-test-" + strconv.FormatBool(rosetta)
				spec := runtime.RunSpec{Name: name, Image: version.Image(), HostPort: testenv.FreePort(t), CPUs: 2, MemoryBytes: 1 << 30, Rosetta: rosetta}
				if err := cli.Run(ctx, spec); err != nil {
					t.Fatal(err)
				}
				if c, err := cli.Get(ctx, name); err != nil || c == nil || c.Rosetta != rosetta {
					t.Fatalf("Get(%s) = %+v, %v; want Rosetta %v", name, c, err, rosetta)
				}
			}
		})
	}
}
