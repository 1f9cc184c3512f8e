package nix

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/setup"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

var (
	extractOnce sync.Once
	extractDir  string
	extractErr  error
)

// vendored extracts the unmodified nix-darwin and nixpkgs lib
// (packaging/nix/testdata/vendor/) once per test binary: the module is evaluated inside the
// real module system.
func vendored(t *testing.T) (nixDarwin, nixpkgsLib string) {
	t.Helper()
	extractOnce.Do(func() {
		if extractDir, extractErr = os.MkdirTemp("", "wrapix-vendor-"); extractErr == nil {
			extractErr = testenv.ExtractVendored(extractDir)
		}
	})
	if extractErr != nil {
		t.Fatal(extractErr)
	}
	return filepath.Join(extractDir, "nix-darwin"), filepath.Join(extractDir, "nixpkgs-lib")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if extractDir != "" {
		os.RemoveAll(extractDir)
	}
	os.Exit(code)
}

// darwinEval evaluates expr (with `d` bound to testdata/darwin.nix's result
// for configuration, a Nix module expression) strictly, as JSON.
func darwinEval(t *testing.T, configuration, expr string) (string, error) {
	t.Helper()
	return nixEval("let d = " + darwinExpr(t, configuration) + "; in " + expr)
}

// darwinExpr is testdata/darwin.nix applied to configuration.
func darwinExpr(t *testing.T, configuration string) string {
	t.Helper()
	nd, nl := vendored(t)
	return fmt.Sprintf(`(import ./testdata/darwin.nix {
  nixDarwin = %s; nixpkgsLib = %s;
  wrapixBuilder = { darwinModules.default = import ./module.nix {
    defaultPackage = pkgs: pkgs.stdenv.mkDerivation { pname = "wrapix-builder"; version = "0.0.0"; };
    defaultImage = pkgs: pkgs.writeText "builder-image.tar" "";
  }; };
  configuration = %s;
})`, nd, nl, configuration)
}

func nixEval(expr string) (string, error) {
	cmd := exec.Command("nix-instantiate", "--option", "build-users-group", "", "--eval", "--strict", "--json", "-E", expr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return stderr.String(), err
	}
	return string(out), nil
}

// darwinEvalEach evaluates expr (of `d`) for each configuration in one Nix
// process; a configuration nix-darwin refuses gives ok = false.
func darwinEvalEach(t *testing.T, configurations []string, expr string) []struct {
	OK    bool
	Value json.RawMessage
} {
	t.Helper()
	var items []string
	for _, c := range configurations {
		items = append(items, "(let d = "+darwinExpr(t, c)+"; r = builtins.tryEval (builtins.deepSeq ("+expr+") ("+expr+")); in { ok = r.success; value = if r.success then r.value else null; })")
	}
	out, err := nixEval("[ " + strings.Join(items, "\n") + " ]")
	if err != nil {
		t.Fatalf("nix-darwin evaluation failed: %v\n%s", err, lastLines(out, 10))
	}
	var res []struct {
		OK    bool
		Value json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != len(configurations) {
		t.Fatalf("%v: %s", err, out)
	}
	return res
}

func mustEval(t *testing.T, configuration, expr string, v any) {
	t.Helper()
	out, err := darwinEval(t, configuration, expr)
	if err != nil {
		t.Fatalf("nix-darwin evaluation failed: %v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// A configuration: the module imported as the README shows, plus body.
func withModule(body string) string {
	return "{ wrapix-builder, ... }: { imports = [ wrapix-builder.darwinModules.default ]; " + body + " }"
}

// readmeExample is the nix-darwin example of README.md's Install section,
// as written there.
func readmeExample(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\\*\\*nix-darwin\\*\\*.*?```nix\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no ```nix block after **nix-darwin**")
	}
	var lines []string
	for _, l := range strings.Split(string(m[1]), "\n") {
		lines = append(lines, strings.TrimPrefix(l, "  "))
	}
	return strings.Join(lines, "\n")
}

// 13: the README's example, exactly as written, switches in real nix-darwin
// (its assertions pass: system.build.toplevel evaluates), and the agent is
// the primary user's.
func TestREADMEExampleEvaluatesInNixDarwin(t *testing.T) {
	example := readmeExample(t)
	conf := "{ wrapix-builder, ... }: {\n" + example + "\n}"
	var res struct {
		Toplevel string
		User     string
		Agent    bool
	}
	mustEval(t, conf, `{ toplevel = d.toplevel; user = d.config.services.wrapix-builder.user;
		agent = d.config.environment.userLaunchAgents ? "org.nixos.wrapix-builder.plist"; }`, &res)
	if res.Toplevel != "ok" || res.User == "" || !res.Agent {
		t.Fatalf("README example: %+v\n%s", res, example)
	}
}

// 13: without system.primaryUser nix-darwin refuses user agents; `user`
// follows system.primaryUser, and a different `user` with the agent on is
// refused with a message that says what to set.
func TestModuleUserFollowsPrimaryUser(t *testing.T) {
	var user string
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`), "d.config.services.wrapix-builder.user", &user)
	if user != "alice" {
		t.Fatalf("user = %q, want system.primaryUser", user)
	}
	for _, c := range []struct{ body, want string }{
		{`system.primaryUser = "alice"; services.wrapix-builder = { enable = true; user = "bob"; };`,
			`services.wrapix-builder.user = "bob" but nix-darwin installs launch agents for system.primaryUser = "alice"`},
		{`services.wrapix-builder = { enable = true; startAtLogin = false; };`, "services.wrapix-builder.user is not set"},
	} {
		out, err := darwinEval(t, withModule(c.body), "d.toplevel")
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: want the assertion %q, got %v\n%s", c.body, c.want, err, out)
		}
	}
	// startAtLogin = false: another user is fine (no agent).
	var ok string
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder = { enable = true; user = "bob"; startAtLogin = false; };`), "d.toplevel", &ok)
}

// 14: the agent runs through nix-darwin's wait4path wrapper, with a PATH
// that finds Apple's `container` and Nix, and logs to the user's
// ~/Library/Logs.
func TestModuleAgent(t *testing.T) {
	var sc struct {
		ProgramArguments     []string
		EnvironmentVariables map[string]string
		StandardOutPath      string
		StandardErrorPath    string
		RunAtLoad            bool
		KeepAlive            bool
	}
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`),
		"d.config.launchd.user.agents.wrapix-builder.serviceConfig", &sc)
	args := strings.Join(sc.ProgramArguments, " ")
	if len(sc.ProgramArguments) != 3 || sc.ProgramArguments[0] != "/bin/sh" ||
		!regexp.MustCompile(`^/bin/sh -c /bin/wait4path /nix/store && exec /nix/store/\S+-wrapix-builder-0\.0\.0/bin/wrapix-builder serve$`).MatchString(args) || !sc.KeepAlive {
		t.Errorf("ProgramArguments %q, KeepAlive %v: want nix-darwin's wait4path wrapper around wrapix-builder serve, kept alive", sc.ProgramArguments, sc.KeepAlive)
	}
	path := strings.Split(sc.EnvironmentVariables["PATH"], ":")
	for _, want := range []string{"/usr/local/bin", "/nix/var/nix/profiles/default/bin", "/run/current-system/sw/bin", "/Users/alice/.nix-profile/bin", "/usr/bin", "/bin"} {
		found := false
		for _, p := range path {
			found = found || p == want
		}
		if !found {
			t.Errorf("agent PATH %q lacks %s", sc.EnvironmentVariables["PATH"], want)
		}
	}
	if sc.EnvironmentVariables["WRAPIX_CONFIG_DIR"] == "" {
		t.Error("agent lacks WRAPIX_CONFIG_DIR")
	}
	if sc.StandardErrorPath != "/Users/alice/Library/Logs/wrapix-builder.log" || sc.StandardOutPath != sc.StandardErrorPath || !sc.RunAtLoad {
		t.Errorf("agent logs to %q / %q, RunAtLoad %v", sc.StandardOutPath, sc.StandardErrorPath, sc.RunAtLoad)
	}
	// The plist nix-darwin renders for launchd is well-formed and says so.
	var plist string
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`),
		`d.config.environment.userLaunchAgents."org.nixos.wrapix-builder.plist".text`, &plist)
	dec := xml.NewDecoder(strings.NewReader(plist))
	dec.Strict = true
	var texts []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the agent's plist is not well-formed XML: %v\n%s", err, plist)
		}
		if cd, ok := tok.(xml.CharData); ok && strings.TrimSpace(string(cd)) != "" {
			texts = append(texts, strings.TrimSpace(string(cd)))
		}
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{"ProgramArguments|/bin/sh|-c|/bin/wait4path /nix/store && exec ", "StandardErrorPath|/Users/alice/Library/Logs/wrapix-builder.log", "PATH|"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the agent's plist lacks %q:\n%s", want, plist)
		}
	}
}

const testHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFTmwF2TfZ+RH8NkDsC8tjKvalQehx9UHkKNE1Nzw6fv"

// What the module makes nix-darwin write, read by the real consumers:
// builder/config reads the config.toml, Debian's Nix reads nix-darwin's
// nix.conf and machines file (and tries the builder for a big-parallel
// derivation), OpenSSH reads the drop-in and the known hosts. The host key
// comes as builtins.readFile gives it: with a comment and a newline.
func TestModuleOutputReadByConsumers(t *testing.T) {
	var out struct {
		Toplevel   string
		ConfigText string
		NixConf    string
		Machines   string
		SSHConfig  string
		Post       string
	}
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder = {
		enable = true; cpus = 6; memory = "12GiB"; port = 2345; maxJobs = 5; speedFactor = 2;
		supportedFeatures = [ "big-parallel" "kvm" ]; hostKey = "`+testHostKey+` root@builder\n"; };`), `{
		toplevel = d.toplevel;
		configText = d.config.services.wrapix-builder.configText;
		nixConf = d.config.environment.etc."nix/nix.conf".source.text;
		machines = d.config.environment.etc."nix/machines".text;
		sshConfig = d.config.environment.etc."ssh/ssh_config.d/100-wrapix-builder.conf".text;
		post = d.config.system.activationScripts.postActivation.text; }`, &out)

	c, err := config.Parse([]byte(out.ConfigText), "config.toml")
	if err != nil {
		t.Fatalf("the CLI refuses the module's config.toml: %v\n%s", err, out.ConfigText)
	}
	if c.CPUs != 6 || c.MemoryBytes != 12<<30 || c.Port != 2345 || c.MaxJobs != 5 || c.SpeedFactor != 2 || strings.Join(c.SupportedFeatures, ",") != "big-parallel,kvm" ||
		!strings.HasSuffix(c.ImageArchive, "-builder-image.tar") {
		t.Errorf("the CLI reads %+v from\n%s", c, out.ConfigText)
	}

	wantLine := "ssh-ng://builder@wrapix-builder aarch64-linux /etc/nix/wrapix_builder_ed25519 5 2 big-parallel,kvm - " + base64.StdEncoding.EncodeToString([]byte(testHostKey)) + "\n"
	if out.Machines != wantLine {
		t.Errorf("machines:\n got %q\nwant %q", out.Machines, wantLine)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nix")
	os.Mkdir(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "nix.conf"), []byte(out.NixConf), 0o644)
	os.WriteFile(filepath.Join(conf, "machines"), []byte(out.Machines), 0o644)
	nixReads(t, conf, "big-parallel")

	dropIn := filepath.Join(dir, "ssh_config")
	os.WriteFile(dropIn, []byte(out.SSHConfig), 0o644)
	g, err := exec.Command("ssh", "-G", "-F", dropIn, "wrapix-builder").Output()
	if err != nil {
		t.Fatalf("ssh -G: %v", err)
	}
	for _, want := range []string{"hostname 127.0.0.1", "port 2345", "user builder", "hostkeyalias wrapix-builder", "stricthostkeychecking true",
		"identityfile /etc/nix/wrapix_builder_ed25519",
		"globalknownhostsfile /etc/nix/wrapix_builder_known_hosts", "userknownhostsfile /dev/null", "identitiesonly yes"} {
		if !strings.Contains(string(g), "\n"+want+"\n") {
			t.Errorf("ssh reads the drop-in without %q", want)
		}
	}
	// The global drop-in names only root's fixed key: the user's own key path is user data (issue 10).
	if strings.Contains(string(g), "/Users/alice") {
		t.Errorf("the global drop-in names the user's key:\n%s", g)
	}
	// Activation writes the known hosts (the given key, trimmed).
	w := newActivationWorld(t)
	if log, err := w.run(out.Post); err != nil {
		t.Fatalf("activation: %v\n%s", err, log)
	}
	kh := w.path("etc/nix/wrapix_builder_known_hosts")
	found, err := exec.Command("ssh-keygen", "-F", "wrapix-builder", "-f", kh).CombinedOutput()
	if err != nil || !strings.Contains(string(found), "wrapix-builder "+testHostKey+"\n") {
		t.Errorf("ssh-keygen -F does not find the pinned key: %v\n%s\n%s", err, found, mustReadFile(t, kh))
	}
	if out.Toplevel != "ok" {
		t.Error(out.Toplevel)
	}
}

// nixReads makes Debian's Nix read nix.conf and the machines file in conf
// (NIX_CONF_DIR: the default `builders = @$NIX_CONF_DIR/machines`) and asks
// it to build an aarch64-linux derivation needing feature: Nix must pick our
// machine and try it (there is no builder here, so the attempt fails).
func nixReads(t *testing.T, conf, feature string) {
	t.Helper()
	dir := t.TempDir()
	drv := filepath.Join(dir, "probe.nix")
	os.WriteFile(drv, []byte(`derivation { name = "wrapix-probe"; system = "aarch64-linux"; builder = "/bin/sh"; requiredSystemFeatures = [ "`+feature+`" ]; }`), 0o644)
	cmd := exec.Command("nix-build", drv, "--store", filepath.Join(dir, "store"), "--max-jobs", "0", "--no-out-link", "--debug",
		"--option", "build-users-group", "", "--option", "substituters", "")
	cmd.Env = append(os.Environ(), "NIX_CONF_DIR="+conf, "NIX_SSHOPTS=-o BatchMode=yes -o ConnectTimeout=2")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "considering building on remote machine 'ssh-ng://builder@wrapix-builder'") ||
		!strings.Contains(string(out), "cannot build on 'ssh-ng://builder@wrapix-builder'") {
		t.Errorf("Nix did not pick the builder from %s for a %s derivation:\n%s", conf, feature, lastLines(string(out), 12))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// 16: the options accept exactly what the CLI's config.toml accepts: each
// value goes to both; the module must refuse (with the option's name) what
// builder/config refuses, and accept what it accepts.
func TestModuleValidatesLikeTheCLI(t *testing.T) {
	cases := []struct{ option, key, nixValue, tomlValue string }{
		{"port", "port", "80", "80"},
		{"port", "port", "1024", "1024"},
		{"port", "port", "65535", "65535"},
		{"port", "port", "0", "0"},
		{"memory", "memory", `"512MiB"`, `"512MiB"`},
		{"memory", "memory", `"8gib"`, `"8gib"`},
		{"memory", "memory", `" 16 G "`, `" 16 G "`},
		{"memory", "memory", `"2TiB"`, `"2TiB"`},
		{"memory", "memory", `"1TiB"`, `"1TiB"`},
		{"memory", "memory", `"8"`, `"8"`},
		{"memory", "memory", `"99999999999999999999G"`, `"99999999999999999999G"`},
		{"maxJobs", "max-jobs", "0", "0"},
		{"maxJobs", "max-jobs", "256", "256"},
		{"maxJobs", "max-jobs", "257", "257"},
		{"speedFactor", "speed-factor", "101", "101"},
		{"speedFactor", "speed-factor", "100", "100"},
		{"cpus", "cpus", "65", "65"},
		{"supportedFeatures", "supported-features", `[ "big parallel" ]`, `["big parallel"]`},
		{"supportedFeatures", "supported-features", `[ "Big-Parallel" ]`, `["Big-Parallel"]`},
		{"supportedFeatures", "supported-features", `[ "nixos-test" "kvm" ]`, `["nixos-test", "kvm"]`},
		{"supportedFeatures", "supported-features", `[ "a,b" ]`, `["a,b"]`},
		{"systems", "systems", `[ ]`, `[]`},
		{"systems", "systems", `[ "x86_64-linux" ]`, `["x86_64-linux"]`},
		{"systems", "systems", `[ "aarch64-darwin" ]`, `["aarch64-darwin"]`},
		{"store", "store", `"directory"`, `"directory"`},
		{"store", "store", `"tmpfs"`, `"tmpfs"`},
	}
	var confs []string
	for _, c := range cases {
		confs = append(confs, withModule(`system.primaryUser = "alice"; services.wrapix-builder = { enable = true; `+c.option+` = `+c.nixValue+`; };`))
	}
	results := darwinEvalEach(t, confs, "d.config.services.wrapix-builder.configText")
	named := map[string]bool{}
	for i, c := range cases {
		_, cliErr := config.Parse([]byte(c.key+" = "+c.tomlValue+"\n"), "config.toml")
		switch r := results[i]; {
		case cliErr == nil && !r.OK:
			t.Errorf("%s = %s: the CLI accepts it, the module refuses it", c.option, c.nixValue)
		case cliErr != nil && r.OK:
			t.Errorf("%s = %s: the CLI refuses it (%v), the module accepts it", c.option, c.nixValue, cliErr)
		case !r.OK && !named[c.option]:
			// The error (one per option, each its own evaluation) names the
			// option, the file that set it and what is allowed.
			named[c.option] = true
			out, _ := darwinEval(t, confs[i], "d.config.services.wrapix-builder.configText")
			if !strings.Contains(out, "services.wrapix-builder."+c.option) {
				t.Errorf("%s = %s: the module's error does not name the option:\n%s", c.option, c.nixValue, lastLines(out, 6))
			}
		case r.OK:
			var text string
			json.Unmarshal(r.Value, &text)
			if _, err := config.Parse([]byte(text), "config.toml"); err != nil {
				t.Errorf("%s = %s: the CLI refuses the module's config.toml: %v", c.option, c.nixValue, err)
			}
		}
	}
	// Host keys: a newline or a comment is fine; anything else is refused.
	keys := map[string]bool{testHostKey + "\n": true, testHostKey + " user@host\n": true, testHostKey: true,
		"ssh-ed25519": false, testHostKey + "\n" + testHostKey + "\n": false, "AAAAC3NzaC1lZDI1NTE5AAAAIFTm": false,
		"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ": false, testHostKey + "x": false}
	var keyList []string
	confs = nil
	for key := range keys {
		keyList = append(keyList, key)
		confs = append(confs, withModule(`system.primaryUser = "alice"; services.wrapix-builder = { enable = true; hostKey = `+nixString(key)+`; };`))
	}
	for i, r := range darwinEvalEach(t, confs, `d.config.environment.etc."nix/machines".text`) {
		if r.OK != keys[keyList[i]] {
			t.Errorf("hostKey %q: accepted %v, want %v", keyList[i], r.OK, keys[keyList[i]])
		}
	}
}

// 15: Determinate Nix needs nix.enable = false (nix-darwin refuses to
// activate over it); without `determinate` the builder would be dropped.
func TestModuleDeterminateAssertions(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`nix.enable = false;`, "nix.enable = false, so nix-darwin writes no nix.conf or machines file"},
		{`services.wrapix-builder.determinate = true;`, "services.wrapix-builder.determinate = true needs nix.enable = false"},
	} {
		out, err := darwinEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true; `+c.body), "d.toplevel")
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: want the assertion %q, got %v\n%s", c.body, c.want, err, lastLines(out, 8))
		}
	}
}

// activationWorld runs a piece of the evaluated activation script with /etc
// and /Users moved under a temporary root, as root, with stand-ins for
// macOS's launchctl and for sudo (which runs the command as the local user
// `builder`, standing for alice) on PATH.
type activationWorld struct {
	root, calls string
	t           *testing.T
}

func newActivationWorld(t *testing.T) *activationWorld {
	testenv.RequireBuilderUser(t)
	testenv.Require(t, "setpriv")
	root := t.TempDir()
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // traversable by `builder`
	}
	w := &activationWorld{root: root, calls: filepath.Join(root, "calls"), t: t}
	bin := filepath.Join(root, "bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "launchctl"), []byte("#!/bin/sh\necho \"launchctl $*\" >> "+w.calls+"\n"), 0o755)
	// alice exists (the local user `builder` stands for her).
	os.WriteFile(filepath.Join(bin, "id"), []byte("#!/bin/sh\ncase \"$*\" in \"-- alice\") exit 0 ;; \"-u -- alice\") exec /usr/bin/id -u builder ;; esac\nexec /usr/bin/id \"$@\"\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "sudo"), []byte(`#!/bin/sh
echo "sudo $*" >> `+w.calls+`
case "$1" in --user=alice) ;; *) echo "unexpected sudo $*" >&2; exit 1 ;; esac
[ "$2" = -- ] || exit 1
shift 2
exec setpriv --reuid=builder --regid=builder --init-groups "$@"
`), 0o755)
	for _, d := range []string{"etc/nix", "etc/ssh/ssh_config.d", "Users/alice"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	u, err := user.Lookup("builder")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	os.Chown(filepath.Join(root, "Users/alice"), uid, gid)
	return w
}

func (w *activationWorld) run(script string) (string, error) {
	script = strings.ReplaceAll(script, "/etc/", w.root+"/etc/")
	script = strings.ReplaceAll(script, "/Users/", w.root+"/Users/")
	script = strings.ReplaceAll(script, "/Library/LaunchDaemons/", w.root+"/Library/LaunchDaemons/")
	// The package's CLI (a stand-in derivation here) is the one built from this tree.
	script = packageCLI.ReplaceAllString(script, filepath.Join(testenv.Binaries(w.t), "wrapix-builder"))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	// As under `sudo darwin-rebuild switch` run by another administrator:
	// activation acts on root's configuration, not for sudo's user.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(w.root, "bin")+":/usr/bin:/bin:/usr/sbin:/sbin", "SUDO_UID=4343")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// userKeys makes alice's key pairs with the CLI, as `wrapix-builder start`
// does, owned by her (the local user builder); it returns the host key line.
func (w *activationWorld) userKeys() string {
	w.t.Helper()
	data := w.path("Users/alice/.local/share/wrapix")
	if out, err := exec.Command(filepath.Join(testenv.Binaries(w.t), "wrapix-builder"), "--data-dir", data, "--config-dir", w.path("cfg"), "keys", "rotate").CombinedOutput(); err != nil {
		w.t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	filepath.Walk(w.path("Users/alice"), func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, builderUID(w.t), -1) })
	pub := strings.Fields(string(mustReadFile(w.t, filepath.Join(data, "builder-keys/host_ed25519.pub"))))
	return pub[0] + " " + pub[1]
}

var packageCLI = regexp.MustCompile(`/nix/store/[0-9a-z]{32}-wrapix-builder-0\.0\.0/bin/wrapix-builder`)

func (w *activationWorld) path(p string) string { return filepath.Join(w.root, p) }

// A Determinate-shaped nix.conf (it includes nix.custom.conf, which the
// installer creates and the user edits).
const determinateNixConf = "# Generated by https://github.com/DeterminateSystems/nix-installer.\nbuild-users-group = nixbld\nexperimental-features = nix-command flakes\n\n!include nix.custom.conf\n"
const userCustomConf = "# Written by https://github.com/DeterminateSystems/nix-installer.\n# The contents below are based on options specified at installation time.\n\nextra-substituters = https://example.cachix.org\nmax-jobs = 3\n"

// 15: with Determinate, nothing in /etc/nix is taken over (nix-darwin would
// abort the first switch over the installer's nix.custom.conf): activation
// keeps a marked block in nix.custom.conf and /etc/nix/machines, leaves the
// user's lines alone, is idempotent, restarts the daemon only on a change,
// and Nix reads the result. 16: a missing ~/.config is made by the user.
func TestModuleDeterminateActivation(t *testing.T) {
	var res struct {
		Toplevel string
		Etc      []string
		Post     string
	}
	mustEval(t, withModule(`system.primaryUser = "alice"; nix.enable = false;
		services.wrapix-builder = { enable = true; determinate = true; hostKey = "`+testHostKey+`"; };`),
		`{ toplevel = d.toplevel; etc = builtins.attrNames d.config.environment.etc; post = d.config.system.activationScripts.postActivation.text; }`, &res)
	for _, name := range res.Etc {
		if name == "nix/nix.custom.conf" || name == "nix/machines" || name == "nix/nix.conf" {
			t.Errorf("environment.etc takes over %s: nix-darwin aborts over the installer's file and drops the user's settings", name)
		}
	}
	w := newActivationWorld(t)
	os.WriteFile(w.path("etc/nix/nix.conf"), []byte(determinateNixConf), 0o644)
	os.WriteFile(w.path("etc/nix/nix.custom.conf"), []byte(userCustomConf), 0o644)
	os.MkdirAll(w.path("Library/LaunchDaemons"), 0o755)
	os.WriteFile(w.path("Library/LaunchDaemons/systems.determinate.nix-daemon.plist"), []byte("<plist/>\n"), 0o644)
	if out, err := w.run(res.Post); err != nil {
		t.Fatalf("activation: %v\n%s", err, out)
	}
	custom := string(mustReadFile(t, w.path("etc/nix/nix.custom.conf")))
	if !strings.HasPrefix(custom, userCustomConf) || !strings.Contains(custom, "\nbuilders-use-substitutes = true\n") {
		t.Errorf("nix.custom.conf:\n%s", custom)
	}
	machines := string(mustReadFile(t, w.path("etc/nix/machines")))
	if !strings.Contains(machines, "\nssh-ng://builder@wrapix-builder aarch64-linux "+w.path("etc/nix/wrapix_builder_ed25519")+" 4 1 benchmark,big-parallel - "+base64.StdEncoding.EncodeToString([]byte(testHostKey))+"\n") {
		t.Errorf("machines:\n%s", machines)
	}
	calls := string(mustReadFile(t, w.calls))
	if strings.Count(calls, "launchctl kickstart -k system/systems.determinate.nix-daemon") != 1 {
		t.Errorf("calls:\n%s", calls)
	}
	// ~/.config did not exist: it is the user's now, and so is the link.
	for _, p := range []string{"Users/alice/.config", "Users/alice/.config/wrapix"} {
		fi, err := os.Stat(w.path(p))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Errorf("%s: %v, owned by root: created for the user as root", p, err)
		}
	}
	if target, err := os.Readlink(w.path("Users/alice/.config/wrapix/config.toml")); err != nil || !strings.HasSuffix(target, "/config.toml") {
		t.Errorf("config.toml link: %q %v", target, err)
	}

	// Again: nothing changes, no restart.
	os.Remove(w.calls)
	if out, err := w.run(res.Post); err != nil {
		t.Fatalf("activation again: %v\n%s", err, out)
	}
	if again := string(mustReadFile(t, w.path("etc/nix/nix.custom.conf"))); again != custom {
		t.Errorf("second activation changed nix.custom.conf:\n%s", again)
	}
	if data, _ := os.ReadFile(w.calls); strings.Contains(string(data), "kickstart") {
		t.Errorf("restarted the daemon without a change:\n%s", data)
	}

	// Real Nix reads the files: nix.conf includes nix.custom.conf, the
	// machines file is the default `builders`.
	conf := w.path("etc/nix")
	cmd := exec.Command("nix", "--extra-experimental-features", "nix-command", "show-config")
	cmd.Env = append(os.Environ(), "NIX_CONF_DIR="+conf)
	show, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix show-config: %v", err)
	}
	for _, want := range []string{"builders-use-substitutes = true", "max-jobs = 3", "substituters = https://cache.nixos.org/ https://example.cachix.org"} {
		if !strings.Contains(string(show), "\n"+want+"\n") {
			t.Errorf("Nix does not read %q from the files", want)
		}
	}
	nixReads(t, conf, "benchmark")
}

// 15: files an earlier `sudo wrapix-builder setup` left make nix-darwin
// abort ("Unexpected files in /etc"); the module's check runs first and
// says what to do.
func TestModuleDetectsSetupLeftovers(t *testing.T) {
	var res struct{ Checks, Script string }
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`),
		`{ checks = d.config.system.checks.text; script = d.config.system.activationScripts.script.text; }`, &res)
	start, end := strings.Index(res.Checks, "# wrapix-builder: files left by"), strings.Index(res.Checks, "# wrapix-builder: end of the setup check")
	if start < 0 || end < 0 {
		t.Fatalf("no setup check in system.checks.text")
	}
	check := res.Checks[start:end]
	if i, j := strings.Index(res.Script, "# wrapix-builder: files left by"), strings.Index(res.Script, "Unexpected files in /etc"); i < 0 || j < 0 || i > j {
		t.Fatalf("the setup check must run before nix-darwin's /etc check (%d, %d)", i, j)
	}
	w := newActivationWorld(t)
	if out, err := w.run(check); err != nil {
		t.Fatalf("clean machine: %v\n%s", err, out)
	}
	os.Symlink("/etc/static/ssh/ssh_config.d/100-wrapix-builder.conf", w.path("etc/ssh/ssh_config.d/100-wrapix-builder.conf"))
	os.WriteFile(w.path("etc/nix/wrapix_builder_known_hosts"), []byte("# written by the module's activation\n"), 0o644)
	if out, err := w.run(check); err != nil {
		t.Fatalf("nix-darwin's own link and the module's known hosts: %v\n%s", err, out)
	}
	os.Remove(w.path("etc/ssh/ssh_config.d/100-wrapix-builder.conf"))
	os.WriteFile(w.path("etc/ssh/ssh_config.d/100-wrapix-builder.conf"), []byte("Host wrapix-builder\n"), 0o644)
	os.WriteFile(w.path("etc/nix/wrapix_builder_setup.json"), []byte("{}\n"), 0o600)
	// Both marker spellings setup has used.
	os.WriteFile(w.path("etc/nix/nix.conf"), []byte("# BEGIN wrapix-builder (managed by `wrapix-builder setup`; remove with `sudo wrapix-builder setup --undo`)\nbuilders-use-substitutes = true\n# END wrapix-builder\n"), 0o644)
	os.WriteFile(w.path("etc/nix/machines"), []byte("# BEGIN wrapix-builder (managed by wrapix-builder setup, undo with: sudo wrapix-builder setup --undo)\nssh-ng://x\n# END wrapix-builder\n"), 0o644)
	out, err := w.run(check)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("leftovers: want exit 2, got %v\n%s", err, out)
	}
	for _, want := range []string{"files from an earlier `sudo wrapix-builder setup`", "sudo wrapix-builder setup --undo",
		"etc/nix/wrapix_builder_setup.json", "etc/nix/nix.conf", "etc/nix/machines", "etc/ssh/ssh_config.d/100-wrapix-builder.conf"} {
		if !strings.Contains(out, want) {
			t.Errorf("message lacks %q:\n%s", want, out)
		}
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Without hostKey, activation pins the key the CLI generated: read as the
// user, one ed25519 line or nothing (a crafted host_ed25519.pub cannot add
// lines to root's known hosts). No etc entry for it either way, so switching
// between the two never trips nix-darwin's /etc check.
func TestModulePinsGeneratedHostKey(t *testing.T) {
	var res struct {
		Post string
		Etc  []string
	}
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`),
		`{ post = d.config.system.activationScripts.postActivation.text; etc = builtins.attrNames d.config.environment.etc; }`, &res)
	for _, name := range res.Etc {
		if name == "nix/wrapix_builder_known_hosts" {
			t.Error("known hosts through environment.etc: the generated key's regular file would abort a later switch")
		}
	}
	for pub, want := range map[string]string{
		testHostKey + " root@wrapix\n":                              "wrapix-builder " + testHostKey + "\n",
		testHostKey + "\n* ssh-ed25519 AAAAattacker\n":              "wrapix-builder " + testHostKey + "\n",
		"* ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFTmwF2TfZ+RH8NkD\n": "",
	} {
		w := newActivationWorld(t)
		keys := w.path("Users/alice/.local/share/wrapix/builder-keys")
		os.MkdirAll(keys, 0o755)
		os.WriteFile(filepath.Join(keys, "host_ed25519.pub"), []byte(pub), 0o644)
		filepath.Walk(w.path("Users/alice"), func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, builderUID(t), -1) })
		if log, err := w.run(res.Post); err != nil {
			t.Fatalf("activation: %v\n%s", err, log)
		}
		got, _ := os.ReadFile(w.path("etc/nix/wrapix_builder_known_hosts"))
		lines := strings.SplitAfter(string(got), "\n")
		if want == "" && len(got) != 0 || want != "" && (len(lines) != 5 || lines[1] != want) {
			t.Errorf("host_ed25519.pub %q gives known hosts:\n%s", pub, got)
		}
	}
}

func builderUID(t *testing.T) int {
	u, err := user.Lookup("builder")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	return uid
}

// nix-darwin's system build runs shellcheck over the whole activation script
// (`shellcheck --exclude=SC2016,SC1112`, modules/system/default.nix): what
// the module adds must pass it, or the switch fails on the Mac.
func TestModuleActivationPassesShellcheck(t *testing.T) {
	testenv.Require(t, "shellcheck")
	for _, body := range []string{
		`services.wrapix-builder.enable = true;`,
		`services.wrapix-builder = { enable = true; hostKey = "` + testHostKey + `"; };`,
		`nix.enable = false; services.wrapix-builder = { enable = true; determinate = true; };`,
		`determinateNix (its own module)`,
	} {
		var script string
		conf := withModule(`system.primaryUser = "alice"; ` + body)
		if strings.HasPrefix(body, "determinateNix") {
			conf = withDeterminateModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`)
		}
		mustEval(t, conf, "d.config.system.activationScripts.script.text", &script)
		if !strings.Contains(script, "# Wrapix Builder.") {
			t.Fatalf("%s: the module's activation is not in the script", body)
		}
		f := filepath.Join(t.TempDir(), "activate")
		os.WriteFile(f, []byte(script), 0o755)
		if out, err := exec.Command("shellcheck", "--exclude=SC2016,SC1112", f).CombinedOutput(); err != nil {
			t.Errorf("%s: shellcheck: %v\n%s", body, err, out)
		}
	}
}

// What the module makes nix-darwin write (hostKey = null: the machines line
// has no public key field, the host key is pinned by activation from the
// CLI's key) is what `doctor` (setup.Check) accepts as a working setup.
func TestDoctorAcceptsTheModulesSetup(t *testing.T) {
	var res struct{ NixConf, SSHConfig, Post string }
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`), `{
		nixConf = d.config.environment.etc."nix/nix.conf".source.text;
		sshConfig = d.config.environment.etc."ssh/ssh_config.d/100-wrapix-builder.conf".text;
		post = d.config.system.activationScripts.postActivation.text; }`, &res)
	w := newActivationWorld(t)
	hostKey := w.userKeys()
	if log, err := w.run(res.Post); err != nil {
		t.Fatalf("activation: %v\n%s", err, log)
	}
	os.WriteFile(w.path("etc/ssh/ssh_config.d/100-wrapix-builder.conf"), []byte(res.SSHConfig), 0o644)
	// Its builders setting names our line's file (doctor checks that too).
	os.WriteFile(w.path("etc/nix/nix.conf"), []byte(res.NixConf), 0o644)
	// The activation world moves /etc, root's key path on the line too.
	line := mustReadFile(t, w.path("etc/nix/wrapix_builder_machines"))
	os.WriteFile(w.path("etc/nix/wrapix_builder_machines"), []byte(strings.ReplaceAll(string(line), w.root, "")), 0o644)
	p := nixconf.Params{User: "builder", Port: 2222, Systems: []string{"aarch64-linux"}, MaxJobs: 4, SpeedFactor: 1,
		Features: []string{"benchmark", "big-parallel"}, HostKey: hostKey,
		HostKeyBase64: base64.StdEncoding.EncodeToString([]byte(hostKey)), UseSubstitutes: true, Form: nixconf.FormAlias}
	if st := setup.Check(w.root, p); st.Trust != setup.StateOK || st.NixConfig != setup.StateOK {
		t.Errorf("doctor sees the module's setup as %+v\nmachines line: %q", st, line)
	}
}

// A damaged marked block (our END line deleted, the administrator's lines
// added below; two BEGINs; an END alone) stops activation with a fix and
// leaves the file byte for byte: finding "our" lines by guessing would delete
// the administrator's.
func TestModuleDamagedBlockIsAnError(t *testing.T) {
	var res struct{ Post string }
	mustEval(t, withModule(`system.primaryUser = "alice"; nix.enable = false;
		services.wrapix-builder = { enable = true; determinate = true; hostKey = "`+testHostKey+`"; };`),
		`{ post = d.config.system.activationScripts.postActivation.text; }`, &res)
	begin := "# BEGIN wrapix-builder (managed by nix-darwin: services.wrapix-builder, edits inside are replaced)\n"
	end := "# END wrapix-builder\n"
	for name, damaged := range map[string]string{
		"BEGIN without END": userCustomConf + begin + "builders-use-substitutes = true\nmax-jobs = 8\n",
		"two BEGINs":        userCustomConf + begin + "builders-use-substitutes = true\n" + end + begin + "max-jobs = 8\n" + end,
		"END without BEGIN": userCustomConf + "max-jobs = 8\n" + end,
	} {
		t.Run(name, func(t *testing.T) {
			w := newActivationWorld(t)
			os.WriteFile(w.path("etc/nix/nix.conf"), []byte(determinateNixConf), 0o644)
			os.WriteFile(w.path("etc/nix/nix.custom.conf"), []byte(damaged), 0o644)
			out, err := w.run(res.Post)
			if err == nil {
				t.Fatalf("activation succeeded over a damaged block:\n%s", out)
			}
			if !strings.Contains(out, "nix.custom.conf: our marked block is damaged") || !strings.Contains(out, "nothing was changed") {
				t.Errorf("no clear error naming the file:\n%s", out)
			}
			if got := string(mustReadFile(t, w.path("etc/nix/nix.custom.conf"))); got != damaged {
				t.Errorf("the damaged file was rewritten:\n%s", got)
			}
			// The healthy file beside it was still brought up to date.
			if machines := string(mustReadFile(t, w.path("etc/nix/machines"))); !strings.Contains(machines, "ssh-ng://builder@wrapix-builder ") {
				t.Errorf("machines:\n%s", machines)
			}
		})
	}
}

// ~/.config/wrapix/config.toml that is the user's own link (a dotfiles
// checkout, home-manager's link into its store generation) is the user's
// file: activation leaves it alone. Only a missing file or the link an
// earlier activation made (into a `…-config.toml` store path) is (re)made.
func TestModuleKeepsTheUsersConfigLink(t *testing.T) {
	var post string
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`),
		`d.config.system.activationScripts.postActivation.text`, &post)
	for target, kept := range map[string]bool{
		"/Users/alice/dotfiles/wrapix.toml": true,
		"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-home-manager-files/.config/wrapix/config.toml": true,
		"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-config.toml/config.toml":                       false,
		"": false, // no file yet
	} {
		w := newActivationWorld(t)
		cfg := w.path("Users/alice/.config/wrapix/config.toml")
		os.MkdirAll(filepath.Dir(cfg), 0o755)
		if target != "" {
			os.Symlink(target, cfg)
		}
		filepath.Walk(w.path("Users/alice"), func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, builderUID(t), -1) })
		if log, err := w.run(post); err != nil {
			t.Fatalf("activation: %v\n%s", err, log)
		}
		got, err := os.Readlink(cfg)
		switch {
		case err != nil:
			t.Errorf("link %q: config.toml is no link after activation: %v", target, err)
		case kept && got != target:
			t.Errorf("the user's own link to %s was replaced by %s", target, got)
		case !kept && (!strings.HasPrefix(got, "/nix/store/") || !strings.HasSuffix(got, "-config.toml/config.toml") || got == target):
			t.Errorf("link %q: activation left %s, want the module's config.toml", target, got)
		}
	}
}

// With Determinate, many configurations declare
// environment.etc."nix/nix.custom.conf" (or "nix/machines") themselves:
// nix-darwin makes those links into /etc/static. Activation must not replace
// such a link with a regular file (nix-darwin's next switch aborts over it:
// "Unexpected files in /etc"); it leaves the link alone and says which line
// to add to the configuration instead. The machines entry is the builder
// itself, so a linked machines file fails the activation with that fix.
func TestModuleDeterminateLeavesNixDarwinLinksAlone(t *testing.T) {
	var post string
	mustEval(t, withModule(`system.primaryUser = "alice"; nix.enable = false;
		services.wrapix-builder = { enable = true; determinate = true; hostKey = "`+testHostKey+`"; };`),
		`d.config.system.activationScripts.postActivation.text`, &post)
	for _, linked := range []string{"nix.custom.conf", "machines"} {
		w := newActivationWorld(t)
		os.WriteFile(w.path("etc/nix/nix.conf"), []byte(determinateNixConf), 0o644)
		os.MkdirAll(w.path("etc/static/nix"), 0o755)
		declared := "trusted-users = root @admin\n"
		os.WriteFile(w.path("etc/static/nix/"+linked), []byte(declared), 0o644)
		os.Symlink(w.path("etc/static/nix/"+linked), w.path("etc/nix/"+linked))
		out, err := w.run(post)
		if fi, lerr := os.Lstat(w.path("etc/nix/" + linked)); lerr != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: nix-darwin's link was replaced by a regular file (the next switch aborts)\n%s", linked, out)
		}
		if got := string(mustReadFile(t, w.path("etc/static/nix/"+linked))); got != declared {
			t.Errorf("%s: the declared file was changed:\n%s", linked, got)
		}
		want := "builders-use-substitutes = true"
		if linked == "machines" {
			want = "ssh-ng://builder@wrapix-builder aarch64-linux"
			if err == nil {
				t.Errorf("machines is nix-darwin's link: activation succeeded without registering the builder\n%s", out)
			}
		} else if err != nil {
			t.Errorf("nix.custom.conf linked: activation failed: %v\n%s", err, out)
		}
		if !strings.Contains(out, `environment.etc."nix/`+linked+`"`) || !strings.Contains(out, want) {
			t.Errorf("%s linked: the message does not say what to add:\n%s", linked, out)
		}
	}
}

// nix.enable = false with upstream Nix from Determinate's installer (it
// writes nix.custom.conf too, but its daemon is org.nixos.nix-daemon):
// activation restarts the daemon that is installed.
func TestModuleRestartsTheInstalledDaemon(t *testing.T) {
	var post string
	mustEval(t, withModule(`system.primaryUser = "alice"; nix.enable = false;
		services.wrapix-builder = { enable = true; determinate = true; hostKey = "`+testHostKey+`"; };`),
		`d.config.system.activationScripts.postActivation.text`, &post)
	w := newActivationWorld(t)
	os.WriteFile(w.path("etc/nix/nix.conf"), []byte(determinateNixConf), 0o644)
	os.WriteFile(w.path("etc/nix/nix.custom.conf"), []byte(userCustomConf), 0o644)
	os.MkdirAll(w.path("Library/LaunchDaemons"), 0o755)
	os.WriteFile(w.path("Library/LaunchDaemons/org.nixos.nix-daemon.plist"), []byte("<plist/>\n"), 0o644)
	if out, err := w.run(post); err != nil {
		t.Fatalf("activation: %v\n%s", err, out)
	}
	if calls := string(mustReadFile(t, w.calls)); !strings.Contains(calls, "launchctl kickstart -k system/org.nixos.nix-daemon\n") || strings.Contains(calls, "systems.determinate") {
		t.Errorf("calls:\n%s", calls)
	}
}

// Issue 16 point 6: activation copied the user's client_ed25519 verbatim
// as root (a 300 MB sparse file became 300 MB in /etc/nix). Now it makes
// root's copy with setup's checks (keys.LoadOwned) and writes the parsed key
// encoded again: a huge file, a link, a FIFO or another owner's file gives a
// warning and no copy; a key wrapped in the user's text gives only the key.
func TestModuleRootKeyCopyIsChecked(t *testing.T) {
	testenv.Require(t, "ssh-keygen")
	var post string
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`),
		`d.config.system.activationScripts.postActivation.text`, &post)
	for _, tc := range []struct {
		name   string
		damage func(w *activationWorld, key string)
	}{
		{"sparse 300 MB", func(w *activationWorld, key string) {
			os.Truncate(key, 300<<20)
		}},
		{"link to a root-only key", func(w *activationWorld, key string) {
			os.Rename(key, key+".mine")
			secret := w.path("root-only")
			os.WriteFile(secret, mustReadFile(t, key+".mine"), 0o600)
			os.Symlink(secret, key)
			os.Lchown(key, builderUID(t), -1)
		}},
		{"fifo", func(w *activationWorld, key string) {
			os.Remove(key)
			syscall.Mkfifo(key, 0o600)
			os.Chown(key, builderUID(t), -1)
		}},
		{"root's file", func(w *activationWorld, key string) { os.Chown(key, 0, 0) }},
		{"wrapped in the user's text", func(w *activationWorld, key string) {
			data := string(mustReadFile(t, key))
			os.WriteFile(key, []byte("Match exec \"/tmp/x\"\n"+strings.Repeat("user text\n", 1000)+data+"user text\n"), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newActivationWorld(t)
			w.userKeys()
			key := w.path("Users/alice/.local/share/wrapix/builder-keys/client_ed25519")
			pub := strings.Fields(string(mustReadFile(t, key+".pub")))
			tc.damage(w, key)
			done := make(chan struct{})
			var log string
			var err error
			go func() { log, err = w.run(post); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("activation hangs on the user's key file")
			}
			if err != nil {
				t.Fatalf("activation failed (a bad key is a warning): %v\n%s", err, log)
			}
			copyPath := w.path("etc/nix/wrapix_builder_ed25519")
			got, readErr := os.ReadFile(copyPath)
			if tc.name != "wrapped in the user's text" {
				if readErr == nil {
					t.Fatalf("root's copy was written (%d bytes)", len(got))
				}
				if !strings.Contains(log, "root's copy of the client key not installed") {
					t.Errorf("no warning:\n%s", log)
				}
				return
			}
			if strings.Contains(string(got), "user text") || strings.Contains(string(got), "Match") {
				t.Fatalf("root's copy holds the user's text:\n%.300s", got)
			}
			if fi, err := os.Stat(copyPath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("root's copy: %v %v, want mode 0600", fi, err)
			}
			derived, err := exec.Command("ssh-keygen", "-y", "-f", copyPath).Output()
			if f := strings.Fields(string(derived)); err != nil || len(f) < 2 || f[0]+" "+f[1] != pub[0]+" "+pub[1] {
				t.Errorf("ssh-keygen -y on root's copy: %v %q, want %s", err, derived, pub[1])
			}
		})
	}
}

// Issue 18 point 4: without `hostKey` the machines line carried "-" and the
// host key was pinned through ssh_config only, which an earlier `Host *`
// drop-in or root's ~/.ssh/config overrides. Once the CLI has made the key,
// activation puts it on the line Nix reads (field 8, as `setup` does), and
// Debian's Nix finds the builder through nix-darwin's nix.conf.
func TestModuleMachinesLineCarriesTheGeneratedHostKey(t *testing.T) {
	var res struct {
		NixConf, Post string
		HasMachines   bool
	}
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder.enable = true;`), `{
		nixConf = d.config.environment.etc."nix/nix.conf".source.text;
		hasMachines = d.config.environment.etc ? "nix/machines";
		post = d.config.system.activationScripts.postActivation.text; }`, &res)
	if res.HasMachines {
		t.Error("the keyless entry is still in nix-darwin's /etc/nix/machines beside the keyed one")
	}
	w := newActivationWorld(t)
	lineFile := w.path("etc/nix/wrapix_builder_machines")
	want := func(key string) string {
		// (the world moves /etc, so root's key path too)
		return "ssh-ng://builder@wrapix-builder aarch64-linux " + w.path("etc/nix/wrapix_builder_ed25519") + " 4 1 benchmark,big-parallel - " + key + "\n"
	}
	// Before the first `start` there is no key: the line pins through ssh_config.
	if out, err := w.run(res.Post); err != nil {
		t.Fatalf("activation: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(lineFile); string(got) != want("-") {
		t.Errorf("before the key exists: %q, want %q", got, want("-"))
	}
	hostKey := w.userKeys()
	if out, err := w.run(res.Post); err != nil {
		t.Fatalf("activation: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(lineFile); string(got) != want(base64.StdEncoding.EncodeToString([]byte(hostKey))) {
		t.Errorf("once the key exists: %q, want the key's base64 in field 8", got)
	}
	if fi, err := os.Stat(lineFile); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("%s: %v %v, want 0644", lineFile, fi, err)
	}
	// Nix reads it through nix-darwin's nix.conf (beside the user's own machines).
	os.WriteFile(w.path("etc/nix/machines"), []byte("ssh://someone@elsewhere x86_64-linux\n"), 0o644)
	os.WriteFile(w.path("etc/nix/nix.conf"), []byte(strings.ReplaceAll(res.NixConf, "/etc/nix/", w.path("etc/nix")+"/")), 0o644)
	nixReads(t, w.path("etc/nix"), "big-parallel")
	// A given hostKey goes through nix-darwin's machines file; the line file goes.
	mustEval(t, withModule(`system.primaryUser = "alice"; services.wrapix-builder = { enable = true; hostKey = "`+testHostKey+`"; };`), `{
		nixConf = d.config.environment.etc."nix/nix.conf".source.text;
		hasMachines = d.config.environment.etc ? "nix/machines";
		post = d.config.system.activationScripts.postActivation.text; }`, &res)
	if out, err := w.run(res.Post); err != nil {
		t.Fatalf("activation: %v\n%s", err, out)
	}
	if _, err := os.Stat(lineFile); err == nil || !res.HasMachines || strings.Contains(res.NixConf, "wrapix_builder_machines") {
		t.Errorf("with hostKey given: line file left (%v), machines entry %v, nix.conf:\n%s", err, res.HasMachines, res.NixConf)
	}
}

// withDeterminateModule is a configuration importing the module and the
// stand-in for Determinate's own nix-darwin module (testdata).
func withDeterminateModule(body string) string {
	return withDeterminateModuleNamed(`{ }`, body)
}

// withDeterminateModuleNamed passes args to the stand-in (its option names).
func withDeterminateModuleNamed(args, body string) string {
	return "{ wrapix-builder, ... }: { imports = [ wrapix-builder.darwinModules.default (import ./testdata/determinate-module.nix " + args + ") ]; " + body + " }"
}

// Issue 18 point 2: Determinate's nix-darwin module owns /etc/nix/machines
// and nix.custom.conf (links into /etc/static); our marked-block activation
// counted a link as damage and exited 1, and without `determinate = true` the
// switch stopped at our assertion. With that module present the builder goes
// in through its options (determinateNix.buildMachines, .customSettings),
// whatever `determinate` says; activation leaves its links alone, and
// Debian's Nix finds the builder through the installer's nix.conf.
func TestModuleWithDeterminatesOwnModule(t *testing.T) {
	for _, c := range []struct{ name, args, body string }{
		{"generated key", `{ }`, `services.wrapix-builder.enable = true;`},
		{"generated key, determinate = true", `{ }`, `services.wrapix-builder = { enable = true; determinate = true; };`},
		{"given key", `{ }`, `services.wrapix-builder = { enable = true; hostKey = "` + testHostKey + `"; };`},
		{"before the rename, determinate-nix.settings", `{ ns = "determinate-nix"; settingsName = "settings"; }`, `services.wrapix-builder.enable = true;`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var res struct {
				Toplevel, CustomConf, Machines, Post string
			}
			mustEval(t, withDeterminateModuleNamed(c.args, `system.primaryUser = "alice"; `+c.body), `{
				toplevel = d.toplevel;
				customConf = d.config.environment.etc."nix/nix.custom.conf".text;
				machines = d.config.environment.etc."nix/machines".text or "";
				post = d.config.system.activationScripts.postActivation.text; }`, &res)
			if !strings.Contains(res.CustomConf, "builders-use-substitutes = true\n") {
				t.Errorf("nix.custom.conf:\n%s", res.CustomConf)
			}
			w := newActivationWorld(t)
			hostKey := w.userKeys()
			// Determinate's module made these links (nix-darwin's /etc/static).
			for name, text := range map[string]string{"nix.custom.conf": res.CustomConf, "machines": res.Machines} {
				os.MkdirAll(w.path("etc/static/nix"), 0o755)
				os.WriteFile(w.path("etc/static/nix/"+name), []byte(text), 0o644)
				os.Symlink("/etc/static/nix/"+name, w.path("etc/nix/"+name))
			}
			if out, err := w.run(res.Post); err != nil {
				t.Fatalf("activation failed over Determinate's module's files: %v\n%s", err, out)
			}
			for _, name := range []string{"nix.custom.conf", "machines"} {
				if target, err := os.Readlink(w.path("etc/nix/" + name)); err != nil || target != "/etc/static/nix/"+name {
					t.Errorf("/etc/nix/%s is no longer Determinate's link: %q %v", name, target, err)
				}
			}
			// Nix reads the installer's nix.conf, which includes the module's custom conf.
			os.WriteFile(w.path("etc/nix/nix.conf"), []byte(determinateNixConf), 0o644)
			for _, name := range []string{"nix.custom.conf", "machines"} {
				os.Remove(w.path("etc/nix/" + name))
				data := mustReadFile(t, w.path("etc/static/nix/"+name))
				os.WriteFile(w.path("etc/nix/"+name), []byte(strings.ReplaceAll(string(data), "/etc/nix/", w.path("etc/nix")+"/")), 0o644)
			}
			nixReads(t, w.path("etc/nix"), "big-parallel")
			key64 := base64.StdEncoding.EncodeToString([]byte(testHostKey))
			if !strings.Contains(c.body, "hostKey") {
				key64 = base64.StdEncoding.EncodeToString([]byte(hostKey))
				if line := string(mustReadFile(t, w.path("etc/nix/wrapix_builder_machines"))); !strings.HasSuffix(line, " "+key64+"\n") {
					t.Errorf("our machines line lacks the generated key: %q", line)
				}
			} else if !strings.Contains(res.Machines, "ssh-ng://builder@wrapix-builder aarch64-linux /etc/nix/wrapix_builder_ed25519 4 1 benchmark,big-parallel - "+key64+"\n") {
				t.Errorf("determinateNix.buildMachines lacks the builder:\n%s", res.Machines)
			}
		})
	}
}

// The official installer's /etc/nix/nix.conf (NixOS/nix
// scripts/install-multi-user.sh): no include of nix.custom.conf.
const officialNixConf = "\nbuild-users-group = nixbld\n"

// Issue 18 point 3: nix.enable = false with the official installer (not
// Determinate) had no correct mode: `determinate = true` put
// builders-use-substitutes into a nix.custom.conf that nix.conf never
// includes. Activation now puts that block where Nix reads it (nix.conf
// itself when it includes no nix.custom.conf); the machines block is read
// through Nix's default builders. Determinate's installer is
// TestModuleDeterminateActivation.
func TestModuleUnmanagedNixFromTheOfficialInstaller(t *testing.T) {
	var res struct{ Toplevel, Post string }
	mustEval(t, withModule(`system.primaryUser = "alice"; nix.enable = false;
		services.wrapix-builder = { enable = true; determinate = true; };`),
		`{ toplevel = d.toplevel; post = d.config.system.activationScripts.postActivation.text; }`, &res)
	w := newActivationWorld(t)
	hostKey := w.userKeys()
	os.WriteFile(w.path("etc/nix/nix.conf"), []byte(officialNixConf), 0o644)
	if out, err := w.run(res.Post); err != nil {
		t.Fatalf("activation: %v\n%s", err, out)
	}
	if _, err := os.Stat(w.path("etc/nix/nix.custom.conf")); err == nil {
		t.Error("wrote a nix.custom.conf that this Nix never reads")
	}
	conf := string(mustReadFile(t, w.path("etc/nix/nix.conf")))
	if !strings.HasPrefix(conf, officialNixConf) {
		t.Errorf("the installer's lines changed:\n%s", conf)
	}
	machines := string(mustReadFile(t, w.path("etc/nix/machines")))
	if !strings.Contains(machines, " - "+base64.StdEncoding.EncodeToString([]byte(hostKey))+"\n") {
		t.Errorf("the machines block lacks the generated key:\n%s", machines)
	}
	if calls := string(mustReadFile(t, w.calls)); !strings.Contains(calls, "launchctl kickstart -k system/org.nixos.nix-daemon\n") {
		t.Errorf("the daemon was not restarted:\n%s", calls)
	}
	cmd := exec.Command("nix", "--extra-experimental-features", "nix-command", "show-config")
	cmd.Env = append(os.Environ(), "NIX_CONF_DIR="+w.path("etc/nix"))
	show, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix show-config: %v", err)
	}
	if !strings.Contains(string(show), "\nbuilders-use-substitutes = true\n") {
		t.Error("Nix does not read builders-use-substitutes from the official installer's files")
	}
	nixReads(t, w.path("etc/nix"), "big-parallel")
}
