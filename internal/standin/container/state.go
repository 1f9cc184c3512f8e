//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// state is everything the stand-in remembers between invocations, in
// $CONTAINER_STANDIN_STATE/state.json, guarded by an flock.
type state struct {
	SystemRunning bool                  `json:"systemRunning"`
	Containers    map[string]*container `json:"containers"`
	Volumes       map[string]*volume    `json:"volumes"`
	Images        map[string]string     `json:"images"` // reference → digest
	NextIP        int                   `json:"nextIP"`
	// Net: e2e mode's container network (netns.go), kept so a state keeps its subnet.
	Net *network `json:"network,omitempty"`

	// APIServerHung: registered with launchd but answering nothing
	// (CONTAINER_STANDIN_SYSTEM=hung) until `system stop` boots it out.
	APIServerHung bool `json:"apiServerHung,omitempty"`
	// KernelInterrupts: how many more kernel downloads break off halfway
	// (CONTAINER_STANDIN_KERNEL_INTERRUPTS). The kernel itself is a file
	// under the app root, as the real one is (system.go).
	KernelInterrupts int `json:"kernelInterrupts,omitempty"`
}

type container struct {
	ID      string            `json:"id"`
	Image   string            `json:"image"`
	State   string            `json:"state"`
	IP      string            `json:"ip,omitempty"`
	Labels  map[string]string `json:"labels"`
	Ports   []port            `json:"ports"`
	Mounts  []mount           `json:"mounts"`
	Env     []string          `json:"env"`
	CPUs    int               `json:"cpus"`
	Memory  int64             `json:"memory"`
	CapAdd  []string          `json:"capAdd"`
	CapDrop []string          `json:"capDrop,omitempty"`
	// --masked-path / --read-only-path values (1.2.1+), NONE included.
	MaskedPaths   []string   `json:"maskedPaths,omitempty"`
	ReadonlyPaths []string   `json:"readonlyPaths,omitempty"`
	Rosetta       bool       `json:"rosetta,omitempty"` // --rosetta (0.7.0+)
	Created       time.Time  `json:"created"`
	Started       *time.Time `json:"started,omitempty"`
	PID           int        `json:"pid,omitempty"` // sshd/e2e modes: the container's first process on this host
	Mode          string     `json:"mode"`
	Entrypoint    string     `json:"entrypoint,omitempty"`
	Arguments     []string   `json:"arguments,omitempty"`
	StopTimeout   int        `json:"-"`

	// sshd/e2e modes: the published port's forwarder (forward.go).
	ForwarderPID int `json:"forwarderPid,omitempty"`
	// e2e mode: the host end of the container's eth0, its gateway and MAC (netns.go).
	Veth    string `json:"veth,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	MAC     string `json:"mac,omitempty"`
}

type port struct {
	HostAddress   string `json:"hostAddress"`
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Proto         string `json:"proto"`
}

type mount struct {
	Type        string `json:"type"` // virtiofs or volume
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Volume      string `json:"volume,omitempty"`
	ReadOnly    bool   `json:"readOnly"`
}

type volume struct {
	Name    string            `json:"name"`
	Options map[string]string `json:"options"`
	Path    string            `json:"path"` // the volume.img stand-in: a directory holding the volume's files
	Image   string            `json:"image"`
	Created time.Time         `json:"created"`
	// InlineData: made by a CLI whose containerization formatted volumes
	// with inline_data (0.2.0–0.16.0, removed in containerization d0b43df;
	// container 0.6.0 pins 0.12.1, 0.7.0 pins 0.16.0).
	InlineData bool `json:"inlineData,omitempty"`
}

type store struct {
	dir  string
	lock *os.File
	st   state
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "state.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	s := &store{dir: dir, lock: f}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads the state, or makes the initial one from the environment.
func (s *store) load() error {
	dir := s.dir
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.st = state{
			SystemRunning: os.Getenv("CONTAINER_STANDIN_SYSTEM") != "stopped",
			APIServerHung: os.Getenv("CONTAINER_STANDIN_SYSTEM") == "hung",
			Containers:    map[string]*container{},
			Volumes:       map[string]*volume{},
			Images:        map[string]string{},
			NextIP:        2,
		}
		s.st.KernelInterrupts, _ = strconv.Atoi(os.Getenv("CONTAINER_STANDIN_KERNEL_INTERRUPTS"))
		if os.Getenv("CONTAINER_STANDIN_LOCALNET") == "denied" {
			if err := os.WriteFile(localNetworkDenied(dir), nil, 0o644); err != nil {
				return err
			}
		}
		kernels := filepath.Join(dir, "appRoot", "kernels")
		if s.st.SystemRunning { // the apiserver makes its kernel directory (KernelService.swift init)
			if err := os.MkdirAll(kernels, 0o755); err != nil {
				return err
			}
		}
		if os.Getenv("CONTAINER_STANDIN_KERNEL") != "missing" {
			if err := os.MkdirAll(kernels, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(kernels, "default.kernel-arm64"), []byte("stand-in kernel\n"), 0o644); err != nil {
				return err
			}
		}
	case err != nil:
		return err
	default:
		s.st = state{}
		if err := json.Unmarshal(data, &s.st); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) save() error {
	data, err := json.MarshalIndent(&s.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, "state.json"))
}

// unlock lets other invocations in while this one waits on something slow.
func (s *store) unlock() {
	syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
}

// relock takes the lock again after unlock and reads what others saved meanwhile.
func (s *store) relock() {
	syscall.Flock(int(s.lock.Fd()), syscall.LOCK_EX)
	if err := s.load(); err != nil {
		fmt.Fprintln(os.Stderr, "container stand-in:", err)
	}
}
