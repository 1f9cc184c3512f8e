package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// x86_64-linux through Rosetta (issue 18.1): the builder runs with
// `--rosetta`, advertises x86_64-linux on the machines line and in the
// builder's extra-platforms, and a sandboxed x86_64-linux build goes through
// it. This host is x86_64, so the stand-in's "guest" runs x86_64 natively:
// what the test proves is that the flag, the machines line and
// extra-platforms line up; Rosetta itself is Apple's (containerization
// registers it with binfmt flags CF, see image/entrypoint.sh).
func TestX86BuildThroughRosetta(t *testing.T) {
	w, _ := setupWithoutWaker(t, nil)
	w.WriteConfig(`systems = ["aarch64-linux", "x86_64-linux"]` + "\n")
	w.Serve()
	mustWB(t, "start")
	runs := w.CallsStarting("run")
	if len(runs) != 1 || !slices.Contains(runs[0], "--rosetta") {
		t.Fatalf("run calls: %v", runs)
	}
	out, err := exec.Command("container", "inspect", "wrapix-builder").Output()
	var inspected []struct {
		Configuration struct{ Rosetta bool } `json:"configuration"`
	}
	if err != nil || json.Unmarshal(out, &inspected) != nil || len(inspected) != 1 || !inspected[0].Configuration.Rosetta {
		t.Fatalf("container inspect: %v %s", err, out)
	}
	if conf := wb(t, "ssh", "cat /etc/nix/nix.conf").stdout; !strings.Contains(conf, "\nextra-platforms = x86_64-linux\n") {
		t.Fatalf("the builder's nix.conf lacks extra-platforms:\n%s", conf)
	}
	h := newHost(t)
	machines, _ := os.ReadFile(filepath.Join(h.Root, "etc/nix/machines"))
	if !strings.Contains(string(machines), " aarch64-linux,x86_64-linux ") {
		t.Fatalf("the machines line does not offer x86_64-linux: %q", machines)
	}
	drv := h.derivation("x86-in-sandbox", `echo "$(uname -m) uid=$(id -u) pid=$$ host=$(hostname)" > $out`)
	res, err := h.build(filepath.Join(h.Work, "c"), drv, 90*time.Second)
	if err != nil {
		t.Fatalf("x86_64-linux build: %v\n%s", err, res)
	}
	got, _ := os.ReadFile(filepath.Join(h.Work, "c", strings.TrimPrefix(outPath(res), "/nix")))
	if strings.TrimSpace(string(got)) != "x86_64 uid=1000 pid=1 host=localhost" {
		t.Fatalf("not an x86_64 build in the builder's sandbox: %q", got)
	}
	if doc := wb(t, "doctor").stdout; !strings.Contains(doc, "x86_64-linux (Rosetta)") {
		t.Fatalf("doctor lacks the Rosetta check:\n%s", doc)
	}
	mustWB(t, "stop")
}
