// Package wakestate is the file through which `wrapix-builder serve` (the
// waking piece) tells everyone else what it is doing: status, doctor and the
// app read it instead of connecting to the port, which would wake the builder.
package wakestate

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileName is the state file in the data directory.
const FileName = "waker.json"

// Builder states as the waker knows them.
const (
	Stopped  = "stopped"
	Starting = "starting"
	Running  = "running"
	Stopping = "stopping"
)

// State is the content of waker.json.
type State struct {
	PID         int        `json:"pid"`
	UID         int        `json:"uid"`
	User        string     `json:"user"`
	Listen      string     `json:"listen"` // 127.0.0.1:<port>, where Nix connects
	Target      string     `json:"target"` // 127.0.0.1:<container-port>, the container's sshd
	IdleStopSec int64      `json:"idleStopSeconds"`
	Builder     string     `json:"builder"` // Stopped, Starting, Running, Stopping
	Connections int        `json:"connections"`
	StopsAt     *time.Time `json:"stopsAt,omitempty"` // when the idle stop is due (running, no connection)
	LastFailure *Failure   `json:"lastFailure,omitempty"`
	IdleStopAt  *time.Time `json:"idleStoppedAt,omitempty"` // when serve last stopped the builder for being idle
	Since       time.Time  `json:"since"`                   // when serve started
}

// Failure is the last wake that could not start the builder.
type Failure struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Attempts is how many starts in a row have failed; until RetryAt serve
	// closes connections at once instead of starting the builder again.
	Attempts int        `json:"attempts,omitempty"`
	RetryAt  *time.Time `json:"retryAt,omitempty"`
}

// Path is the state file in dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Write replaces the state file atomically.
func Write(dataDir string, s State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	// Atomic (readers never see half a file) but not synced: it describes a
	// live process and is rewritten on every change, so a crash losing the
	// last write loses nothing, and a connection never waits on the disk.
	tmp, err := os.CreateTemp(dataDir, "."+FileName+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), Path(dataDir))
}

// Read returns the state and whether its writer is still alive; a missing
// file is (nil, false, nil).
func Read(dataDir string) (*State, bool, error) {
	data, err := os.ReadFile(Path(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, false, err
	}
	return &s, Alive(s.PID), nil
}

// Alive reports whether a process with pid exists (signal 0; EPERM means it
// exists but belongs to someone else).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
