package platform

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runShell runs an AdminArgs command line (item 1 of argv, what `do shell
// script` hands to sh) with a recorder in place of the CLI and returns the
// argv the recorder received.
func runShell(t *testing.T, cmdline string, dir string) []string {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", cmdline).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", cmdline, err)
	}
	parts := bytes.Split(out, []byte{0})
	var got []string
	for _, p := range parts[:len(parts)-1] {
		got = append(got, string(p))
	}
	return got
}

func recorder(t *testing.T) string {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	os.WriteFile(rec, []byte("#!/bin/sh\nprintf '%s\\0' \"$0\" \"$@\"\n"), 0o755)
	return rec
}

func checkAdmin(t *testing.T, rec string, argv []string) {
	t.Helper()
	args := AdminArgs(append([]string{rec}, argv...))
	// Fixed script text; the values are arguments, never AppleScript source.
	if strings.Join(args[:6], "|") != "-e|on run argv|-e|do shell script (item 1 of argv) with prompt (item 2 of argv) with administrator privileges without altering line endings|-e|end run" {
		t.Fatalf("script is not fixed: %q", args[:6])
	}
	cwd := t.TempDir()
	got := runShell(t, "cd "+cwd+" && "+args[6], cwd)
	want := append([]string{rec}, argv...)
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Fatalf("the command line executed something: %v", entries)
	}
}

func TestAdminArgsQuoting(t *testing.T) {
	rec := recorder(t)
	for _, home := range []string{"/home/o'brien $(touch pwned)/x", `/Users/a"b\c`, "/Users/`id`", "/Users/ünï cødé/…", "/Users/semi;colon&amp|pipe", "/Users/new\nline", "/Users/$HOME"} {
		checkAdmin(t, rec, []string{"--data-dir", home + "/.local/share/wrapix", "--config-dir", home + "/.config/wrapix", "setup"})
	}
}

func FuzzAdminArgs(f *testing.F) {
	for _, s := range []string{"/home/o'brien $(touch pwned)/x", `"`, `\`, "$(x)", "`x`", "ü", "-rf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return // no argument can hold a NUL
		}
		checkAdmin(t, recorder(t), []string{"--data-dir", s, "setup"})
	})
}

func TestCommandFileAndDesktopExec(t *testing.T) {
	rec := recorder(t)
	path := "/Users/o'brien $(touch pwned)/x"
	f := filepath.Join(t.TempDir(), "run.command")
	os.WriteFile(f, []byte(CommandFile([]string{rec, "--data-dir", path, "ssh"})), 0o700)
	out, err := exec.Command(f).Output()
	if err != nil || string(out) != rec+"\x00--data-dir\x00"+path+"\x00ssh\x00" {
		t.Fatalf("command file: %v %q", err, out)
	}
	line := DesktopExec([]string{`/opt/my "app"/bin/wrapix $x 100%f`})
	if line != `"/opt/my \\"app\\"/bin/wrapix \\$x 100%%f"` {
		t.Fatalf("desktop exec %s", line)
	}
}

// Shell and Logs each have their own script: opening both at once must
// run both commands, not the last one written twice.
func TestCommandFilePerAction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Application Support", "wrapix")
	rec := recorder(t)
	shell, err := WriteCommandFile(dir, "ssh", []string{rec, "ssh"})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := WriteCommandFile(dir, "logs", []string{rec, "logs", "--follow"})
	if err != nil {
		t.Fatal(err)
	}
	if shell == logs {
		t.Fatalf("Shell and Logs share %s", shell)
	}
	for f, want := range map[string]string{shell: rec + "\x00ssh\x00", logs: rec + "\x00logs\x00--follow\x00"} {
		out, err := exec.Command(f).Output()
		if err != nil || string(out) != want {
			t.Errorf("%s ran %q (%v), want %q", f, out, err, want)
		}
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s mode %v", f, fi.Mode())
		}
	}
}

// The texts osascript prints (macos-apis.md §5.1): a dismissed prompt is
// AppleScript's userCanceledErr (-128); the script's own failure is not.
func TestOsascriptError(t *testing.T) {
	exit1 := exec.Command("/bin/sh", "-c", "exit 1").Run()
	if err := OsascriptError(exit1, "0:212: execution error: User canceled. (-128)\n"); err != ErrCancelled {
		t.Errorf("cancel: %v", err)
	}
	err := OsascriptError(exit1, "0:212: execution error: setup: /etc/nix is managed by nix-darwin (10)\n")
	if err == nil || errors.Is(err, ErrCancelled) || !strings.Contains(err.Error(), "managed by nix-darwin") {
		t.Errorf("failure: %v", err)
	}
	if OsascriptError(nil, "") != nil {
		t.Error("success is no error")
	}
}
