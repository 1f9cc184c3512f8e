package runtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Container states as the CLI prints them. Anything but Running is "not up".
const (
	StateUnknown  = "unknown"
	StateStopped  = "stopped"
	StateRunning  = "running"
	StateStopping = "stopping"
)

// Container is what we need of one `container ls`/`inspect` entry, from
// either JSON generation.
type Container struct {
	ID        string
	State     string
	IP        string    // IPv4 without /prefix; "" when stopped
	Image     string    // image reference
	StartedAt time.Time // zero when absent
	Ports     []PublishedPort
	Mounts    []Mount
	Labels    map[string]string
	CPUs      int
	Memory    int64
	CapAdd    []string
	Rosetta   bool   // run with Rosetta (configuration.rosetta)
	Shape     string // "1.x" or "0.x": which JSON generation was seen
}

// PublishedPort is one -p mapping.
type PublishedPort struct {
	HostAddress   string
	HostPort      int
	ContainerPort int
	Proto         string
}

// Mount is one configured mount.
type Mount struct {
	Type        string // virtiofs, volume, tmpfs, block
	Source      string // host path (for a volume: its volume.img)
	Destination string
	VolumeName  string
	ReadOnly    bool
}

// Running reports whether the container is up.
func (c *Container) Running() bool { return c != nil && c.State == StateRunning }

// PublishedTo returns the host address that container port p is published on, if any.
func (c *Container) PublishedTo(p int) (PublishedPort, bool) {
	for _, pp := range c.Ports {
		if pp.ContainerPort == p {
			return pp, true
		}
	}
	return PublishedPort{}, false
}

// Mount returns the mount at destination dst.
func (c *Container) MountAt(dst string) (Mount, bool) {
	for _, m := range c.Mounts {
		if m.Destination == dst {
			return m, true
		}
	}
	return Mount{}, false
}

// JSON as printed by the CLI. Only what we read is declared; unknown fields
// are ignored and every field may be absent.
type rawContainer struct {
	ID            string          `json:"id"`
	Status        json.RawMessage `json:"status"` // 1.x: object; 0.x: string
	Configuration rawConfig       `json:"configuration"`
	Networks      []rawNetwork    `json:"networks"`    // 0.x
	StartedDate   json.RawMessage `json:"startedDate"` // 0.x: float seconds since 2001-01-01
}

type rawStatus struct {
	State       string          `json:"state"`
	Networks    []rawNetwork    `json:"networks"`
	StartedDate json.RawMessage `json:"startedDate"`
}

type rawNetwork struct {
	IPv4Address string `json:"ipv4Address"` // 0.8+: "192.168.64.5/24"
	Address     string `json:"address"`     // 0.1–0.7
}

type rawConfig struct {
	ID    string `json:"id"`
	Image struct {
		Reference string `json:"reference"`
	} `json:"image"`
	PublishedPorts []struct {
		HostAddress   string `json:"hostAddress"`
		HostPort      int    `json:"hostPort"`
		ContainerPort int    `json:"containerPort"`
		Proto         string `json:"proto"`
	} `json:"publishedPorts"`
	Mounts []struct {
		Type        map[string]json.RawMessage `json:"type"`
		Source      string                     `json:"source"`
		Destination string                     `json:"destination"`
		Options     []string                   `json:"options"`
	} `json:"mounts"`
	Labels    map[string]string `json:"labels"`
	Resources struct {
		CPUs          int   `json:"cpus"`
		MemoryInBytes int64 `json:"memoryInBytes"`
	} `json:"resources"`
	CapAdd  []string `json:"capAdd"`
	Rosetta bool     `json:"rosetta"`
}

// appleEpoch is the reference date of Swift's default Date encoding.
var appleEpoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// ParseContainers decodes `container ls --format json` or `inspect` output of
// any generation. Empty output is an empty list.
func ParseContainers(data []byte) ([]Container, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	var raws []rawContainer
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("not the JSON list of containers we expect: %v", err)
	}
	out := make([]Container, 0, len(raws))
	for _, r := range raws {
		c, err := r.decode()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (r rawContainer) decode() (Container, error) {
	c := Container{ID: r.ID, Image: r.Configuration.Image.Reference, Labels: r.Configuration.Labels,
		CPUs: r.Configuration.Resources.CPUs, Memory: r.Configuration.Resources.MemoryInBytes, CapAdd: r.Configuration.CapAdd,
		Rosetta: r.Configuration.Rosetta}
	if c.ID == "" {
		c.ID = r.Configuration.ID
	}
	networks, started := r.Networks, r.StartedDate
	status := bytes.TrimSpace(r.Status)
	switch {
	case len(status) > 0 && status[0] == '{':
		var s rawStatus
		if err := json.Unmarshal(status, &s); err != nil {
			return c, fmt.Errorf("container %q: bad status object: %v", c.ID, err)
		}
		c.State, networks, started, c.Shape = s.State, s.Networks, s.StartedDate, "1.x"
	case len(status) > 0 && status[0] == '"':
		if err := json.Unmarshal(status, &c.State); err != nil {
			return c, fmt.Errorf("container %q: bad status: %v", c.ID, err)
		}
		c.Shape = "0.x"
	default:
		return c, fmt.Errorf("container %q has no status", c.ID)
	}
	if c.State == "" {
		c.State = StateUnknown
	}
	for _, n := range networks {
		addr := n.IPv4Address
		if addr == "" {
			addr = n.Address
		}
		if addr != "" {
			c.IP, _, _ = strings.Cut(addr, "/")
			break
		}
	}
	c.StartedAt = parseDate(started)
	for _, p := range r.Configuration.PublishedPorts {
		c.Ports = append(c.Ports, PublishedPort{p.HostAddress, p.HostPort, p.ContainerPort, p.Proto})
	}
	for _, m := range r.Configuration.Mounts {
		mt := Mount{Source: m.Source, Destination: m.Destination}
		for t, v := range m.Type { // {"volume":{"name":…}} or {"virtiofs":{}}
			mt.Type = t
			if t == "volume" {
				var vol struct {
					Name string `json:"name"`
				}
				_ = json.Unmarshal(v, &vol)
				mt.VolumeName = vol.Name
			}
		}
		for _, o := range m.Options {
			if o == "ro" || o == "readonly" {
				mt.ReadOnly = true
			}
		}
		c.Mounts = append(c.Mounts, mt)
	}
	return c, nil
}

func parseDate(raw json.RawMessage) time.Time {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t
		}
		return time.Time{}
	}
	var secs float64
	if json.Unmarshal(raw, &secs) == nil {
		return appleEpoch.Add(time.Duration(secs * float64(time.Second)))
	}
	return time.Time{}
}
