package runtime_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/runtime"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// `system status` per version: its app root (the 0.x free text and the
// table from 0.10), and the kernel found there or not.
func TestSystemStatusAndKernelPerVersion(t *testing.T) {
	for _, v := range contractVersions {
		t.Run(v, func(t *testing.T) {
			w := testenv.New(t)
			t.Setenv("CONTAINER_STANDIN_VERSION", v)
			t.Setenv("CONTAINER_STANDIN_KERNEL", "missing")
			t.Setenv("CONTAINER_STANDIN_KERNEL_SECONDS", "0.2")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cli := runtime.New("container")
			sys, err := cli.SystemStatus(ctx)
			if err != nil || sys.State != runtime.SystemUp {
				t.Fatalf("SystemStatus = %+v, %v", sys, err)
			}
			if filepath.Clean(sys.AppRoot) != filepath.Join(w.StandinDir, "appRoot") {
				t.Errorf("app root %q", sys.AppRoot)
			}
			if runtime.KernelInstalled(sys.AppRoot) {
				t.Error("a missing kernel reads as installed")
			}
			if err := cli.KernelInstall(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if !runtime.KernelInstalled(sys.AppRoot) {
				t.Error("no kernel after KernelInstall")
			}
		})
	}
}

// The two exit-1 answers of `system status` are told apart.
func TestSystemStatusUnregisteredAndHung(t *testing.T) {
	testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_SYSTEM", "hung")
	// Before the world's `stop --all`, which would wait on the hung apiserver.
	t.Cleanup(func() { exec.Command("container", "system", "stop").Run() })
	ctx := context.Background()
	cli := runtime.New("container")
	t0 := time.Now()
	if sys, err := cli.SystemStatus(ctx); err != nil || sys.State != runtime.SystemNotResponding {
		t.Errorf("hung: %+v, %v", sys, err)
	}
	if time.Since(t0) < 9*time.Second {
		t.Errorf("a hung apiserver answered status in %s; the real ping waits 10 s", time.Since(t0))
	}
	if err := exec.Command("container", "system", "stop").Run(); err != nil {
		t.Fatal(err)
	}
	if sys, err := cli.SystemStatus(ctx); err != nil || sys.State != runtime.SystemUnregistered {
		t.Errorf("after system stop: %+v, %v", sys, err)
	}
}
