package status

import (
	"errors"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/problem"
)

func TestDecideAndExitCodes(t *testing.T) {
	running := Container{Name: "wrapix-builder", Exists: true, State: "running"}
	cases := []struct {
		name  string
		r     Report
		err   error
		state string
		code  int
	}{
		{"runtime missing", Report{}, problem.New(problem.Runtime, "no container CLI", "install it"), Unavailable, 4},
		{"absent", Report{}, nil, Stopped, 6},
		{"stopped", Report{Container: Container{Exists: true, State: "stopped"}}, nil, Stopped, 6},
		{"ready", Report{Container: running, SSH: SSH{OK: true, Address: "127.0.0.1:2222"}, NixDaemon: NixDaemon{OK: true}}, nil, Ready, 0},
		{"daemon down", Report{Container: running, SSH: SSH{OK: true}, NixDaemon: NixDaemon{Error: "connection refused"}}, nil, Unhealthy, 7},
		{"wrong host key", Report{Container: running, SSH: SSH{Error: "the builder presented a different SSH host key"}}, nil, Unhealthy, 7},
		{"booting", Report{Container: running, SSH: SSH{Error: "connection refused"}}, nil, Starting, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.Decide(tc.err)
			if r.State != tc.state || r.ExitCode() != tc.code || r.Schema != Schema {
				t.Fatalf("state %s code %d", r.State, r.ExitCode())
			}
			if r.State != Ready && r.State != Stopped && r.Problem == nil && tc.name != "booting" {
				t.Errorf("no problem given for %s", r.State)
			}
			if tc.err != nil && !strings.Contains(r.Problem.Fix, "install it") {
				t.Errorf("fix lost: %+v", r.Problem)
			}
			text := r.Text()
			if !strings.Contains(text, "Builder:") || !strings.Contains(text, r.State) {
				t.Errorf("text %q", text)
			}
		})
	}
	if p := ProblemFrom(errors.New("plain")); p.What != "plain" {
		t.Error(p)
	}
}

func TestTextShowsWarnings(t *testing.T) {
	r := &Report{Container: Container{Name: "wrapix-builder"}, Warnings: []Warning{{What: "builds run WITHOUT the Nix sandbox", Fix: "upgrade container to 1.2.1"}}}
	r.Decide(nil)
	text := r.Text()
	if !strings.Contains(text, "WARNING:     builds run WITHOUT the Nix sandbox") || !strings.Contains(text, "Fix:         upgrade container to 1.2.1") {
		t.Fatalf("%s", text)
	}
}
