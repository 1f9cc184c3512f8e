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

// Both numbers users ask about: the store in use and the disk the volume
// takes on the Mac, and `gc --compact` suggested only when it is worth a copy.
func TestStoreLineShowsInUseAndDiskTaken(t *testing.T) {
	used, disk, vol := int64(25<<20), int64(346<<20), int64(512<<30)
	s := Store{Backend: "volume", Location: "wrapix-builder-nix", UsedBytes: &used, SizeBytes: &disk, VolumeBytes: &vol, CapBytes: 100 << 30}
	if got, want := s.Text(), "volume wrapix-builder-nix: 25.0 MiB in use, 346.0 MiB disk taken on the Mac, cap 100.0 GiB of a 512.0 GiB volume"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	cases := []struct {
		disk, used int64
		ok         bool
	}{
		{346 << 20, 25 << 20, false}, // < 1 GiB to gain
		{40 << 30, 8 << 30, true},
		{40 << 30, 30 << 30, false}, // not half as much again
		{40 << 30, -1, false},       // stopped: in use unknown
		{-1, 1 << 30, false},
	}
	for _, tc := range cases {
		if n, ok := Reclaimable(tc.disk, tc.used); ok != tc.ok || (ok && n != tc.disk-tc.used) {
			t.Errorf("Reclaimable(%d, %d) = %d, %v", tc.disk, tc.used, n, ok)
		}
	}
	disk, used = 40<<30, 8<<30
	n, _ := Reclaimable(disk, used)
	s = Store{Backend: "volume", Location: "v", UsedBytes: &used, SizeBytes: &disk, ReclaimableBytes: &n, CapBytes: 100 << 30}
	if !strings.Contains(s.Text(), "(`wrapix-builder gc --compact` gives 32.0 GiB back)") {
		t.Error(s.Text())
	}
}
