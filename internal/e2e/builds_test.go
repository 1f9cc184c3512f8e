package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/builds"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// buildsDoc is `builds --json`.
func buildsDoc(t *testing.T) builds.Document {
	t.Helper()
	var d builds.Document
	out := mustWB(t, "builds", "--json")
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("builds --json: %v\n%s", err, out)
	}
	return d
}

func byName(list []builds.Build, name string) (builds.Build, bool) {
	for _, b := range list {
		if b.Name == name {
			return b, true
		}
	}
	return builds.Build{}, false
}

// follower runs `wrapix-builder builds --follow --json` and collects its lines.
type follower struct {
	mu    sync.Mutex
	lines []builds.Build
}

func follow(t *testing.T) *follower {
	t.Helper()
	f := &follower{}
	cmd := exec.Command(filepath.Join(testenv.Binaries(t), "wrapix-builder"), "builds", "--follow", "--json")
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var b builds.Build
			if json.Unmarshal(sc.Bytes(), &b) == nil {
				f.mu.Lock()
				f.lines = append(f.lines, b)
				f.mu.Unlock()
			}
		}
	}()
	return f
}

func (f *follower) seen() []builds.Build {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]builds.Build(nil), f.lines...)
}

// Two concurrent builds and a failing one, from a separate host-side Nix:
// the builder records them, `builds` lists them while running and after with
// the right names, durations and outcomes, `--follow` streams them in order,
// `status --json` shows the running ones, `--log` prints the failed one's
// log, and the history survives a restart of the builder.
func TestBuildActivity(t *testing.T) {
	_, _ = setup(t, nil)
	mustWB(t, "start")
	f := follow(t)
	h := newHost(t)
	a := h.derivation("activity-a", `sleep 4; echo a $RANDOM > $out`)
	b := h.derivation("activity-b", `sleep 6; echo b $RANDOM > $out`)
	broken := h.derivation("activity-broken", `echo "the broken build says hello"; sleep 3; exit 3`)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	outs := make([]string, 2)
	for i, drv := range []string{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = h.build(filepath.Join(h.Work, "ca"+string(rune('0'+i))), drv, 90*time.Second)
		}()
	}
	// While both run: `builds` and `status --json` show them.
	waitFor(t, 30*time.Second, func() bool {
		d := buildsDoc(t)
		_, okA := byName(d.Running, "activity-a")
		_, okB := byName(d.Running, "activity-b")
		return okA && okB
	})
	var st struct {
		Builds *struct{ Running []builds.Build } `json:"builds"`
	}
	r := wb(t, "status", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Builds == nil || len(st.Builds.Running) < 1 {
		t.Fatalf("status --json shows no running builds: %v\n%s", err, r.stdout)
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("build %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	out, err := h.build(filepath.Join(h.Work, "cbroken"), broken, 60*time.Second)
	if err == nil {
		t.Fatalf("the broken build succeeded:\n%s", out)
	}
	var d builds.Document
	waitFor(t, 20*time.Second, func() bool {
		d = buildsDoc(t)
		_, ok := byName(d.Finished, "activity-broken")
		return ok && len(d.Running) == 0
	})
	for name, want := range map[string]struct {
		outcome  string
		min, max float64
	}{
		"activity-a":      {builds.Succeeded, 2, 9},
		"activity-b":      {builds.Succeeded, 4, 11},
		"activity-broken": {builds.Failed, 1, 8},
	} {
		got, _ := byName(d.Finished, name)
		if got.Outcome != want.outcome || got.Duration < want.min || got.Duration > want.max || got.End == nil {
			t.Errorf("%s: %+v, want %s in %v–%v s", name, got, want.outcome, want.min, want.max)
		}
		if !strings.HasSuffix(got.Drv, "-"+name+".drv") {
			t.Errorf("%s: drv %q", name, got.Drv)
		}
	}
	// Nix before 2.10 or so gives the hook an empty OUT_PATHS (Debian's 2.8 does): outputs are optional.
	if ok, _ := byName(d.Finished, "activity-a"); len(ok.Outputs) > 1 || len(ok.Outputs) == 1 && !strings.HasSuffix(ok.Outputs[0], "-activity-a") {
		t.Errorf("activity-a outputs: %v", ok.Outputs)
	}
	if bd, _ := byName(d.Finished, "activity-broken"); d.Finished[0].Name != "activity-broken" || !bd.End.After(d.Finished[1].Start) {
		t.Errorf("finished builds not newest first: %+v", d.Finished)
	}

	// --follow saw each start before its end, the failure last.
	waitFor(t, 10*time.Second, func() bool { return len(f.seen()) >= 6 })
	seen := f.seen()
	order := map[string][]string{}
	for _, s := range seen {
		order[s.Name] = append(order[s.Name], s.Outcome)
	}
	for name, want := range map[string]string{"activity-a": "running succeeded", "activity-b": "running succeeded", "activity-broken": "running failed"} {
		if got := strings.Join(order[name], " "); got != want {
			t.Errorf("--follow for %s: %q, want %q (all: %+v)", name, got, want, seen)
		}
	}
	if last := seen[len(seen)-1]; last.Name != "activity-broken" || last.Outcome != builds.Failed {
		t.Errorf("last streamed event %+v", last)
	}

	// --log prints the failed build's own output, by name and by path.
	for _, arg := range []string{"activity-broken", mustFind(t, d, "activity-broken").Drv} {
		if out := mustWB(t, "builds", "--log", arg); !strings.Contains(out, "the broken build says hello") {
			t.Errorf("builds --log %s: %q", arg, out)
		}
	}
	if r := wb(t, "builds", "--log", "no-such-build"); r.code != 2 || !strings.Contains(r.stderr, "no build") {
		t.Errorf("builds --log of an unknown build: %d %s", r.code, r.stderr)
	}
	text := mustWB(t, "builds")
	for _, want := range []string{"✗  activity-broken", "✓  activity-a", "failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("builds lacks %q:\n%s", want, text)
		}
	}

	// History survives a restart of the builder.
	mustWB(t, "stop")
	mustWB(t, "start")
	after := buildsDoc(t)
	for _, name := range []string{"activity-a", "activity-b", "activity-broken"} {
		if _, ok := byName(after.Finished, name); !ok {
			t.Errorf("%s lost across a restart: %+v", name, after.Finished)
		}
	}
}

func mustFind(t *testing.T, d builds.Document, name string) builds.Build {
	t.Helper()
	b, ok := byName(d.Finished, name)
	if !ok {
		t.Fatalf("no %s in %+v", name, d.Finished)
	}
	return b
}

// A broken hook never fails a build: the event log replaced by a directory
// and the hook's marker directory by a file, the build still succeeds.
func TestBrokenBuildHookNeverFailsABuild(t *testing.T) {
	w, _ := setup(t, nil)
	mustWB(t, "start")
	wdir := filepath.Join(builderStore(w), "var/wrapix")
	os.Remove(filepath.Join(wdir, "builds.log"))
	os.MkdirAll(filepath.Join(wdir, "builds.log"), 0o755)
	os.RemoveAll(filepath.Join(wdir, "done"))
	os.WriteFile(filepath.Join(wdir, "done"), nil, 0o644)
	h := newHost(t)
	out, err := h.build(filepath.Join(h.Work, "c"), h.derivation("hooked", `echo $RANDOM > $out`), 60*time.Second)
	if err != nil {
		t.Fatalf("a broken hook failed the build: %v\n%s", err, out)
	}
	if !strings.Contains(out, "on 'ssh-ng://builder@wrapix-builder'") {
		t.Fatalf("not built remotely:\n%s", out)
	}
	// The builder keeps running and its loop survives the broken state.
	time.Sleep(3 * time.Second)
	if st := wb(t, "status"); st.code != 0 {
		t.Fatalf("status after a broken hook: %d %s", st.code, st.stdout)
	}
}

// A build cut by the builder's death is closed as interrupted at the next start.
func TestBuildInterruptedByBuilderDeath(t *testing.T) {
	_, _ = setup(t, nil)
	mustWB(t, "start")
	h := newHost(t)
	drv := h.derivation("cut-short", `sleep 60; echo late > $out`)
	done := make(chan error, 1)
	go func() {
		_, err := h.build(filepath.Join(h.Work, "c"), drv, 90*time.Second)
		done <- err
	}()
	waitFor(t, 30*time.Second, func() bool { _, ok := byName(buildsDoc(t).Running, "cut-short"); return ok })
	if out, err := exec.Command("container", "kill", "wrapix-builder").CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	if err := <-done; err == nil {
		t.Fatal("the build survived a killed builder")
	}
	mustWB(t, "start")
	d := buildsDoc(t)
	if b, ok := byName(d.Finished, "cut-short"); !ok || b.Outcome != builds.Interrupted || len(d.Running) != 0 {
		t.Fatalf("after the restart: %+v", d)
	}
}

// The history is bounded: a start trims the log to its last 2000 events,
// keeping the newest.
func TestBuildLogIsBounded(t *testing.T) {
	w, _ := setup(t, nil)
	mustWB(t, "start")
	mustWB(t, "stop")
	var sb strings.Builder
	for i := 0; i < 2500; i++ {
		drv := "/nix/store/" + strings.Repeat("a", 27) + strconv.Itoa(10000+i) + "-old-" + strconv.Itoa(i) + ".drv"
		sb.WriteString(`{"event":"start","drv":"` + drv + `","time":` + strconv.Itoa(1000+i) + "}\n")
	}
	log := filepath.Join(builderStore(w), "var/wrapix/builds.log")
	if err := os.WriteFile(log, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	mustWB(t, "start")
	data, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2000 || !strings.Contains(lines[len(lines)-1], "-old-2499.drv") {
		t.Fatalf("the log kept %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	// A builder without the log (an image from before build activity) is told apart from one with no builds.
	os.Remove(log)
	if r := wb(t, "builds"); r.code != 7 || !strings.Contains(r.stderr, "wrapix-builder stop && wrapix-builder start") {
		t.Fatalf("builds without a log: %d %q", r.code, r.stderr)
	}
}

// hostileLines are events a compromised builder could write: paths with a
// terminal escape (a window-title OSC), a command substitution, a line
// break, a bidi override, and a path outside the store.
func hostileLines(t0 int) string {
	const hash = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	var sb strings.Builder
	for i, name := range []string{`x\u001b]0;pwned-title\u0007`, `$(touch${IFS}/tmp/pwned)`, `line\nbreak-pwned`, `evil\u202egnp-pwned`} {
		sb.WriteString(`{"event":"start","drv":"/nix/store/` + hash + `-` + name + `.drv","time":` + strconv.Itoa(t0+i) + "}\n")
		sb.WriteString(`{"event":"failure","drv":"/nix/store/` + hash + `-` + name + `.drv","time":` + strconv.Itoa(t0+i+1) + "}\n")
	}
	sb.WriteString(`{"event":"start","drv":"/tmp/pwned-outside.drv","time":` + strconv.Itoa(t0) + "}\n")
	return sb.String()
}

// runCLI runs the real binary (its own process, so its peak RSS is its own).
func runCLI(t *testing.T, args ...string) (string, string, int, int64) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.Binaries(t), "wrapix-builder"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
}

func appendLog(t *testing.T, log, text string) {
	t.Helper()
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// The builder's event log is untrusted (issue 16, points 7 and 8): grown by
// 1 GiB with no line end, then hostile events, then valid ones, `builds`
// reads only its end (peak RSS stays small), shows the valid builds, drops
// the hostile ones, and prints nothing a terminal interprets; `--follow`
// prints the `--log` command shell-quoted.
func TestHostileBuildLog(t *testing.T) {
	w, _ := setup(t, nil)
	mustWB(t, "start")
	log := filepath.Join(builderStore(w), "var/wrapix/builds.log")
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(log, fi.Size()+1<<30); err != nil { // a hole: 1 GiB of NULs costing no disk
		t.Fatal(err)
	}
	const hash = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tail := "/nix/store/" + hash + "-hostile-tail?x=1.drv" // `?` globs in a shell: the suggestion must quote it
	appendLog(t, log, "\n"+hostileLines(5000)+
		`{"event":"start","drv":"/nix/store/`+hash+`-hostile-running.drv","time":5100}`+"\n"+
		`{"event":"start","drv":"`+tail+`","time":5101}`+"\n")

	for _, args := range [][]string{{"builds"}, {"builds", "--json"}} {
		out, errOut, code, rss := runCLI(t, args...)
		t.Logf("%v on a 1 GiB log: peak RSS %.1f MiB", args, float64(rss)/(1<<20))
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if rss > 100<<20 {
			t.Errorf("%v: peak RSS %d MiB on a 1 GiB log", args, rss>>20)
		}
		if !strings.Contains(out, "hostile-running") || !strings.Contains(out, "hostile-tail?x=1") {
			t.Errorf("%v lacks the valid builds:\n%s", args, out)
		}
		if strings.Contains(out, "pwned") || strings.ContainsAny(out, "\x1b\x07\u202e") {
			t.Errorf("%v shows a hostile event:\n%q", args, out)
		}
	}

	// --follow: hostile events are dropped, the failure's command is quoted.
	cmd := exec.Command(filepath.Join(testenv.Binaries(t), "wrapix-builder"), "builds", "--follow")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var mu sync.Mutex
	var lines []string
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	waitFor(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(lines) > 0 }) // the table: following now
	appendLog(t, log, hostileLines(6000)+strings.Repeat("z", 3<<20)+"\n"+`{"event":"failure","drv":"`+tail+`","time":5105}`+"\n")
	var failed string
	waitFor(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, "failed after") {
				failed = l
				return true
			}
		}
		return false
	})
	if want := "wrapix-builder builds --log '" + tail + "'"; !strings.Contains(failed, want) {
		t.Errorf("--follow's failure line %q lacks %q", failed, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range lines {
		if strings.Contains(l, "pwned") || strings.ContainsAny(l, "\x1b\x07\u202e") {
			t.Errorf("--follow shows a hostile event: %q", l)
		}
	}
}
