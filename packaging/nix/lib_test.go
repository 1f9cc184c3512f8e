// Package nix holds the Nix front end of Wrapix Builder's configuration
// (lib.nix, module.nix). Its test proves the nix-darwin module writes what
// the Go code writes.
package nix

import (
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/nixconf"
)

func nixString(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a valid Nix string for these values (no ${)
	return string(b)
}

func nixList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = nixString(s)
	}
	return "[ " + strings.Join(q, " ") + " ]"
}

// eval runs lib.nix's functions on settings offline and returns
// [machinesLine, sshConfig, knownHosts, buildMachine as JSON].
func eval(t *testing.T, p nixconf.Params) []any {
	t.Helper()
	c := "{ user = " + nixString(p.User) + "; port = " + strconv.Itoa(p.Port) + "; systems = " + nixList(p.Systems) +
		"; maxJobs = " + strconv.Itoa(p.MaxJobs) + "; speedFactor = " + strconv.Itoa(p.SpeedFactor) + "; features = " + nixList(p.Features) +
		"; hostKey = " + nixString(p.HostKey) + "; }"
	expr := "let l = import ./lib.nix; c = " + c + "; in [ (l.machinesLine c) (l.sshConfig c) (l.knownHosts c) (l.buildMachine c) ]"
	out, err := exec.Command("nix-instantiate", "--eval", "--strict", "--json", "-E", expr).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("nix-instantiate: %v\n%s", err, msg)
	}
	var res []any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestModuleValuesEqualGoOutput(t *testing.T) {
	keys := []string{
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFTmwF2TfZ+RH8NkDsC8tjKvalQehx9UHkKNE1Nzw6fv",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJr3YxQ0wZ8bW0m1Zk0xQm2tY9dX9cXW0b1k2fQ0aZ9a",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA+/+/==",
	}
	cases := []nixconf.Params{
		{User: "builder", Port: 2222, Systems: []string{"aarch64-linux"}, MaxJobs: 4, SpeedFactor: 1, Features: []string{"benchmark", "big-parallel"}, HostKey: keys[0]},
		{User: "builder", Port: 40022, Systems: []string{"aarch64-linux", "x86_64-linux"}, MaxJobs: 12, SpeedFactor: 3, Features: nil, HostKey: keys[1]},
		{User: "builder", Port: 2222, Systems: []string{"aarch64-linux"}, MaxJobs: 1, SpeedFactor: 1, Features: []string{"nixos-test"}, HostKey: keys[2]},
	}
	for i, p := range cases {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			p.HostKeyBase64 = base64.StdEncoding.EncodeToString([]byte(p.HostKey))
			p.Form = nixconf.FormAlias
			got := eval(t, p)
			for j, want := range []string{nixconf.MachinesLine(p), nixconf.SSHConfig(p), nixconf.KnownHosts(p)} {
				if got[j] != want {
					t.Errorf("output %d differs:\n--- nix\n%q\n--- go\n%q", j, got[j], want)
				}
			}
			// The buildMachines entry equals the one in Go's nix-darwin snippet.
			snippet := nixconf.NixDarwin(p)
			out, err := exec.Command("nix-instantiate", "--eval", "--strict", "--json", "-E",
				"(builtins.head ("+snippet+").nix.buildMachines)").Output()
			if err != nil {
				t.Fatalf("eval snippet: %v", err)
			}
			var fromGo, fromNix map[string]any
			json.Unmarshal(out, &fromGo)
			b, _ := json.Marshal(got[3])
			json.Unmarshal(b, &fromNix)
			gj, _ := json.Marshal(fromGo)
			nj, _ := json.Marshal(fromNix)
			if string(gj) != string(nj) {
				t.Errorf("buildMachines entry differs:\n nix %s\n go  %s", nj, gj)
			}
		})
	}
}

func TestModuleParses(t *testing.T) {
	for _, f := range []string{"module.nix", "lib.nix"} {
		if out, err := exec.Command("nix-instantiate", "--parse", f).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", f, err, out)
		}
	}
}
