package e2e

// The builder as Apple's runtime really runs it, version by version: the
// stand-in's container root is what image/layout.sh makes (a non-standalone
// busybox, no host /bin), with the version's capabilities and /proc masks.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// ociDefaultCapEff is the effective set of the OCI default capabilities
// (containerization defaultOCICapabilities): CHOWN DAC_OVERRIDE FOWNER FSETID
// KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD
// AUDIT_WRITE SETFCAP.
const ociDefaultCapEff = 1<<0 | 1<<1 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<13 | 1<<18 | 1<<27 | 1<<29 | 1<<31

const capSysAdmin = 1 << 21

// A sandboxed (sandbox = true) real build through the builder on each
// container version: the OCI default capabilities only from 0.12 (nothing
// added), /proc unmasked with the opt-out flags from 1.2.1, and on 1.2.0
// — masks and no opt-out — the decided behaviour: builds run unsandboxed
// and start, status (text and JSON) and doctor say so with the fix.
func TestSandboxedBuildPerVersion(t *testing.T) {
	for _, tc := range []struct {
		version   string
		sandboxed bool
		allCaps   bool
	}{
		{"1.2.2", true, false},
		{"1.2.1", true, false},
		{"1.2.0", false, false},
		{"0.12.0", true, false},
		{"0.9.0", true, true},
	} {
		t.Run(tc.version, func(t *testing.T) {
			w, _ := setup(t, nil)
			t.Setenv("CONTAINER_STANDIN_VERSION", tc.version)
			start := wb(t, "start")
			if start.code != 0 {
				t.Fatalf("start: %d\n%s%s", start.code, start.stdout, start.stderr)
			}
			warned := strings.Contains(start.stderr, "WARNING: builds run WITHOUT the Nix sandbox")
			if warned == tc.sandboxed {
				t.Fatalf("start's sandbox warning: %v, want %v\n%s", warned, !tc.sandboxed, start.stderr)
			}
			h := newHost(t)
			drv := h.derivation("where-am-i", `echo "uid=$(id -u) pid=$$ host=$(hostname)" > $out`)
			out, err := h.build(filepath.Join(h.Work, "c"), drv, 90*time.Second)
			if err != nil {
				t.Fatalf("sandboxed build on %s: %v\n%s", tc.version, err, out)
			}
			got, _ := os.ReadFile(filepath.Join(h.Work, "c", strings.TrimPrefix(outPath(out), "/nix")))
			// The Nix sandbox runs the builder as PID 1 of its own namespaces, as uid 1000, on host "localhost".
			inSandbox := strings.TrimSpace(string(got)) == "uid=1000 pid=1 host=localhost"
			if inSandbox != tc.sandboxed {
				t.Fatalf("built in the sandbox: %v, want %v (%q)", inSandbox, tc.sandboxed, got)
			}
			// The entrypoint's capabilities: all before 0.12, the OCI default set (no CAP_SYS_ADMIN) after.
			r := wb(t, "ssh", "grep CapEff /proc/1/status")
			f := strings.Fields(r.stdout)
			if len(f) != 2 {
				t.Fatalf("CapEff: %q %q", r.stdout, r.stderr)
			}
			capEff, _ := strconv.ParseUint(f[1], 16, 64)
			if tc.allCaps && capEff&capSysAdmin == 0 || !tc.allCaps && capEff != ociDefaultCapEff {
				t.Fatalf("PID 1's capabilities %#x on %s", capEff, tc.version)
			}
			st := wb(t, "status", "--json")
			var rep struct {
				State    string
				Warnings []struct{ What, Fix string }
			}
			if err := json.Unmarshal([]byte(st.stdout), &rep); err != nil {
				t.Fatalf("status --json: %v %s", err, st.stdout)
			}
			if rep.State != "ready" || (len(rep.Warnings) > 0) == tc.sandboxed {
				t.Fatalf("status --json on %s: %s", tc.version, st.stdout)
			}
			doc := wb(t, "doctor")
			if !tc.sandboxed {
				if !strings.Contains(rep.Warnings[0].Fix, "1.2.1 or newer") {
					t.Fatalf("the warning's fix: %+v", rep.Warnings)
				}
				if text := wb(t, "status").stdout; !strings.Contains(text, "WARNING") || !strings.Contains(text, "1.2.1 or newer") {
					t.Fatalf("status text lacks the warning:\n%s", text)
				}
				if !strings.Contains(doc.stdout, "WITHOUT the Nix sandbox") || !strings.Contains(doc.stdout, "1.2.1 or newer") {
					t.Fatalf("doctor lacks the sandbox warning:\n%s", doc.stdout)
				}
			} else if !strings.Contains(doc.stdout, "Nix sandbox on the builder") {
				t.Fatalf("doctor lacks the sandbox check:\n%s", doc.stdout)
			}
			mustWB(t, "stop")
			_ = w
		})
	}
}

// Defect 1, caught by the strict root: the image as it was before the fix
// (/bin holding only busybox and sh) does not come up, because a
// non-standalone busybox finds mkdir & co only as links on PATH.
func TestStrictRootCatchesBareBin(t *testing.T) {
	w := testenv.New(t)
	w.E2E(testenv.ImageWith(t, testenv.ImageOptions{BareBin: true}))
	w.WriteConfig("systems = [\"x86_64-linux\"]\n")
	r := wb(t, "start")
	if r.code == 0 {
		t.Fatalf("an image without applet links came up:\n%s", r.stdout)
	}
	if l := logs(w); !strings.Contains(l, ": not found") {
		t.Fatalf("the entrypoint did not stop at its first external command:\n%s\n--- start\n%s%s", l, r.stdout, r.stderr)
	}
}

// Defect 5: the builder substitutes by itself over HTTPS, trusting the
// image's CA bundle (nix.conf ssl-cert-file). The cache is served here over
// TLS with a CA made for the test; the builder's store lacks the path and
// the client asks it to substitute (builders-use-substitutes).
func TestBuilderSubstitutesOverTLS(t *testing.T) {
	testenv.RequireRoot(t)
	work := t.TempDir()
	os.Chmod(work, 0o755)
	caFile, ca := testCA(t, work)

	// The input path, and a signed binary cache holding it.
	input := filepath.Join(work, "subst-input")
	os.MkdirAll(input, 0o755)
	blob := make([]byte, 1<<20)
	rand.Read(blob)
	os.WriteFile(filepath.Join(input, "blob"), blob, 0o644)
	cacheStore := filepath.Join(work, "cache-store")
	cacheDir := filepath.Join(work, "cache")
	nixEnv := append(os.Environ(), "NIX_CONFIG=build-users-group =\nexperimental-features = nix-command")
	run := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Env = nixEnv
		out, err := cmd.Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			t.Fatalf("%s %v: %v %s", name, args, err, msg)
		}
		return strings.TrimSpace(string(out))
	}
	p := run("nix-store", "--store", "local?root="+cacheStore, "--add", input)
	run("nix-store", "--generate-binary-cache-key", "wrapix-test-1", filepath.Join(work, "sec"), filepath.Join(work, "pub"))
	run("nix", "copy", "--from", "local?root="+cacheStore, "--to", "file://"+cacheDir+"?secret-key="+filepath.Join(work, "sec"), p)
	pub, _ := os.ReadFile(filepath.Join(work, "pub"))

	var nars atomic.Int32
	files := http.FileServer(http.Dir(cacheDir))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/nar/") {
			nars.Add(1)
		}
		files.ServeHTTP(rw, req)
	}))
	w := testenv.New(t)
	testenv.Require(t, "unshare", "ssh")
	w.E2E(testenv.ImageWith(t, testenv.ImageOptions{CABundle: caFile}))
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n")
	w.Serve() // Nix connects to port, which `serve` owns
	// The container reaches the host at its gateway (it has a network of
	// its own): the cache listens there, once the network exists.
	port := testenv.FreePort(t)
	guest, _ := json.Marshal([]string{"WRAPIX_SUBSTITUTERS=https://{gateway}:" + strconv.Itoa(port), "WRAPIX_TRUSTED_PUBLIC_KEYS=" + strings.TrimSpace(string(pub))})
	t.Setenv("CONTAINER_STANDIN_GUEST_ENV", string(guest))
	mustWB(t, "start")
	gw := containerGateway(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(gw, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on the gateway: %v", err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.serverCert(t, net.ParseIP(gw))}}
	srv.StartTLS()
	defer srv.Close()
	if _, err := os.Stat(filepath.Join(w.StandinDir, "volumes/wrapix-builder-nix/data", strings.TrimPrefix(p, "/nix"))); err == nil {
		t.Fatal("the builder's store has the path already")
	}
	h := newHost(t)
	h.extraOptions = []string{"--option", "builders-use-substitutes", "true"}
	drv := filepath.Join(h.Work, "uses-input.nix")
	os.WriteFile(drv, []byte(`let bb = builtins.path { path = `+filepath.Join(h.Work, "bb")+`; name = "busybox"; };
  input = builtins.path { path = `+input+`; name = "subst-input"; }; in
derivation { name = "uses-substituted-input"; system = "x86_64-linux"; builder = "${bb}/bin/sh";
  args = [ "-c" "${bb}/bin/busybox wc -c ${input}/blob > $out" ]; }
`), 0o644)
	out, err := h.build(filepath.Join(h.Work, "c"), drv, 90*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, logs(w))
	}
	if nars.Load() == 0 {
		t.Fatalf("the builder did not fetch the input from the HTTPS cache (it was uploaded instead):\n%s", out)
	}
	r := wb(t, "ssh", "nix-store --check-validity "+p+" && echo valid")
	if !strings.Contains(r.stdout, "valid") {
		t.Fatalf("the substituted path is not valid on the builder: %s %s", r.stdout, r.stderr)
	}
}

// testCA makes a CA (its PEM in a file: the image's CA bundle) that signs
// server certificates.
func testCA(t *testing.T, dir string) (string, *testAuthority) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wrapix test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	return caFile, &testAuthority{ca, caKey}
}

type testAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// serverCert is a certificate for ip signed by the CA.
func (a *testAuthority) serverCert(t *testing.T, ip net.IP) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip.String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{ip}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// containerGateway is the running builder's gateway (`container inspect`):
// the host's address on the container's network.
func containerGateway(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("container", "inspect", "wrapix-builder").Output()
	var inspected []struct {
		Status struct {
			Networks []struct{ IPv4Gateway string }
		}
	}
	if err != nil || json.Unmarshal(out, &inspected) != nil || len(inspected) != 1 || len(inspected[0].Status.Networks) == 0 {
		t.Fatalf("container inspect: %v %s", err, out)
	}
	return inspected[0].Status.Networks[0].IPv4Gateway
}

// A first start on 0.6–0.8 loads image-archive (their `image inspect` of a
// missing image answers `notFound: "images: <ref>"`), then runs the real
// builder on that version's runtime (all capabilities, no masks) to ready.
func TestFirstStartLoadsImageArchiveOldVersions(t *testing.T) {
	rootfs := testenv.Image(t, nil)
	for _, v := range []string{"0.6.0", "0.7.0", "0.8.0"} {
		t.Run(v, func(t *testing.T) {
			w := testenv.New(t)
			w.E2E(rootfs)
			t.Setenv("CONTAINER_STANDIN_VERSION", v)
			t.Setenv("CONTAINER_STANDIN_IMAGES", "other:latest")
			archive := testenv.OCIArchive(t, version.Image())
			systems := `["x86_64-linux"]`
			if v == "0.6.0" { // x86_64-linux needs `run --rosetta` (0.7.0); this test builds nothing
				systems = `["aarch64-linux"]`
			}
			w.WriteConfig(`systems = ` + systems + "\n" + `image-archive = "` + archive + `"` + "\n")
			r := wb(t, "start")
			if r.code != 0 || !strings.Contains(r.stdout, "ready") || !strings.Contains(r.stderr+r.stdout, "loading the builder image from "+archive) {
				t.Fatalf("first start on %s: %d\n%s%s\n%s", v, r.code, r.stdout, r.stderr, logs(w))
			}
			if st := wb(t, "status"); st.code != 0 {
				t.Fatalf("status: %d %s", st.code, st.stdout)
			}
			mustWB(t, "stop")
		})
	}
}
