package nixconf

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFTmwF2TfZ+RH8NkDsC8tjKvalQehx9UHkKNE1Nzw6fv"

func params(form string) Params {
	return Params{User: "builder", Port: 2222, Systems: []string{"aarch64-linux"}, MaxJobs: 4, SpeedFactor: 1,
		Features: []string{"benchmark", "big-parallel"}, HostKey: hostKey, HostKeyBase64: base64.StdEncoding.EncodeToString([]byte(hostKey)),
		UseSubstitutes: true, Form: form}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from its golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGoldenOutputs(t *testing.T) {
	for _, form := range []string{FormAlias, FormPort} {
		p := params(form)
		golden(t, "machines-"+form, MachinesLine(p))
		golden(t, "nix.conf-"+form, NixConf(p))
		golden(t, "determinate-"+form, Determinate(p))
		golden(t, "ssh-config-"+form, SSHConfig(p))
		golden(t, "known-hosts-"+form, KnownHosts(p))
		golden(t, "nix-darwin-"+form, NixDarwin(p))
	}
}

func TestMachinesLineShape(t *testing.T) {
	f := strings.Fields(MachinesLine(params(FormAlias)))
	if len(f) != 8 {
		t.Fatalf("machines line has %d fields", len(f))
	}
	if f[0] != "ssh-ng://builder@wrapix-builder" || f[2] != RootKeyPath || f[6] != "-" {
		t.Errorf("fields %v", f)
	}
	dec, err := base64.StdEncoding.DecodeString(f[7])
	if err != nil || string(dec) != hostKey {
		t.Errorf("field 8 %q does not decode to the host key", f[7])
	}
	p := params(FormAlias)
	p.Features = nil
	if strings.Fields(MachinesLine(p))[5] != "-" {
		t.Error("empty features must be '-'")
	}
	// Never a bare localhost: Nix would use the local store.
	for _, form := range []string{FormAlias, FormPort} {
		if u := params(form).URI(); !strings.Contains(u, "builder@") {
			t.Errorf("URI %s has no user", u)
		}
	}
}

// Real Nix must parse the nix-darwin snippet.
func TestNixDarwinSnippetParses(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatal("nix-instantiate is required (apt-get install nix-bin)")
	}
	for _, form := range []string{FormAlias, FormPort} {
		p := params(form)
		f := filepath.Join(t.TempDir(), "snippet.nix")
		os.WriteFile(f, []byte(NixDarwin(p)), 0o644)
		out, err := exec.Command("nix-instantiate", "--parse", f).CombinedOutput()
		if err != nil {
			t.Fatalf("nix-instantiate --parse: %v\n%s", err, out)
		}
		// Evaluate it as a plain attribute set: the values must be the literal strings.
		expr := "let c = import " + f + "; in [ (builtins.head c.nix.buildMachines).publicHostKey c.environment.etc.\"ssh/ssh_config.d/100-wrapix-builder.conf\".text ]"
		out, err = exec.Command("nix-instantiate", "--eval", "--strict", "--json", "-E", expr).Output()
		if err != nil {
			t.Fatalf("eval: %v\n%s", err, out)
		}
		var got []string
		if err := json.Unmarshal(out, &got); err != nil || len(got) != 2 {
			t.Fatalf("eval output %s: %v", out, err)
		}
		if got[0] != p.HostKeyBase64 {
			t.Errorf("publicHostKey %q", got[0])
		}
		if got[1] != SSHConfig(p) {
			t.Errorf("ssh_config text in the snippet differs from SSHConfig():\n%s\n---\n%s", got[1], SSHConfig(p))
		}
	}
}

func TestParseNixVersion(t *testing.T) {
	cases := []struct {
		in, flavor string
		port       bool
	}{
		{"nix (Nix) 2.8.0", "nix", false},
		{"nix (Nix) 2.31", "nix", false},
		{"nix (Nix) 2.31.0", "nix", false},
		{"nix (Nix) 2.31.2", "nix", false},
		{"nix (Nix) 2.31.3", "nix", true},
		{"nix (Nix) 2.32.0", "nix", true},
		{"nix (Determinate Nix 3.11.0) 2.31.1", "determinate", false},
		{"nix (Determinate Nix 3.6.2) 2.29.0", "determinate", false},
		{"nix (Determinate Nix 3.12.0) 2.32.1", "determinate", true},
		{"nix (Lix, like Nix) 2.91.1", "lix", false},
		{"nix (Nix) 3.0.0", "nix", true},
	}
	for _, tc := range cases {
		v, err := ParseNixVersion(tc.in)
		if err != nil || v.Flavor != tc.flavor || v.SupportsPortURI() != tc.port {
			t.Errorf("%q: %+v %v", tc.in, v, err)
		}
	}
	if _, err := ParseNixVersion("bash: nix: command not found"); err == nil {
		t.Error("accepted garbage")
	}
}

// Issue 18 point 5: Nix 2.31.0–2.31.2 treat a port URI to localhost as the
// local machine; the reason says so, so doctor and setup can name it.
func TestPortURIWhyNot(t *testing.T) {
	for in, want := range map[string]string{
		"nix (Nix) 2.31.1":           "2.31.0–2.31.2",
		"nix (Nix) 2.30.2":           "Nix ≥ 2.31.3",
		"nix (Lix, like Nix) 2.93.0": "Lix",
		"nix (Nix) 2.31.3":           "",
	} {
		v, err := ParseNixVersion(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.PortURIWhyNot(); want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("%q: %q, want it to mention %q", in, got, want)
		}
	}
}

// Issue 18 point 9: `builders = LINE` replaced Nix's default
// `@/etc/nix/machines`, hiding the user's other machines. (`extra-builders`
// is no remedy: builders is a plain string setting, and Nix warns "unknown
// setting 'extra-builders'".) The fragments name the machines file first.
func TestFragmentsKeepTheMachinesFile(t *testing.T) {
	p := params(FormAlias)
	for name, text := range map[string]string{"nix.conf": NixConf(p), "determinate": Determinate(p)} {
		var builders []string
		for _, l := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(l, "builders = "); ok {
				builders = strings.Split(v, ";")
			}
		}
		if len(builders) != 2 || builders[0] != "@"+MachinesPath || builders[1]+"\n" != MachinesLine(p) {
			t.Errorf("%s: builders entries %q, want @%s then our line", name, builders, MachinesPath)
		}
	}
}
