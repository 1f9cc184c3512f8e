//go:build linux

package main

import (
	"encoding/json"
	"sort"
	"strings"
	"time"
)

var appleEpoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

func sortedIDs(m map[string]*container) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// renderJSON prints containers as the imitated version does: 1.x
// ManagedContainer {id, configuration, status:{…}} with sorted keys (maps
// marshal sorted) and ISO-8601 dates; 0.x PrintableContainer
// {status, configuration, networks, startedDate} with unsorted keys.
// Before 1.4.1 Swift escapes '/' as '\/'.
func (c *cli) renderJSON(ids []string, pretty bool) string {
	var items []any
	for _, id := range ids {
		items = append(items, c.containerJSON(c.st.st.Containers[id]))
	}
	if items == nil {
		items = []any{}
	}
	var out []byte
	if pretty && c.atLeast(1, 0, 0) {
		out, _ = json.MarshalIndent(items, "", "  ")
	} else {
		out, _ = json.Marshal(items)
	}
	s := string(out)
	if !c.atLeast(1, 4, 1) {
		s = strings.ReplaceAll(s, "/", `\/`)
	}
	return s
}

type kv struct {
	k string
	v any
}

// ordered marshals its keys in the given order (0.x output is unsorted).
type ordered []kv

func (o ordered) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

func (c *cli) containerJSON(ct *container) any {
	var mounts []any
	for _, m := range ct.Mounts {
		var typ any = map[string]any{"virtiofs": map[string]any{}}
		if m.Type == "volume" {
			typ = map[string]any{"volume": map[string]any{"name": m.Volume, "format": "ext4", "cache": map[string]any{"on": map[string]any{}}, "sync": map[string]any{"fsync": map[string]any{}}}}
		}
		opts := []string{}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		mounts = append(mounts, map[string]any{"type": typ, "source": m.Source, "destination": m.Destination, "options": opts})
	}
	if mounts == nil {
		mounts = []any{}
	}
	var ports []any
	for _, p := range ct.Ports {
		pm := map[string]any{"hostAddress": p.HostAddress, "hostPort": p.HostPort, "containerPort": p.ContainerPort, "proto": p.Proto}
		if c.atLeast(0, 7, 0) {
			pm["count"] = 1
		}
		ports = append(ports, pm)
	}
	if ports == nil {
		ports = []any{}
	}
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, ct.Env...)
	config := map[string]any{
		"id":             ct.ID,
		"image":          map[string]any{"reference": ct.Image, "descriptor": map[string]any{"digest": c.st.st.Images[ct.Image], "mediaType": "application/vnd.oci.image.index.v1+json", "size": 1609}},
		"mounts":         mounts,
		"publishedPorts": ports,
		"labels":         ct.Labels,
		"networks":       []any{map[string]any{"network": "default", "options": map[string]any{"hostname": ct.ID}}},
		"dns":            map[string]any{"nameservers": []any{}, "options": []any{}, "searchDomains": []any{}},
		"initProcess": map[string]any{"executable": "/entrypoint.sh", "arguments": ct.Arguments, "environment": env, "workingDirectory": "/",
			"terminal": false, "user": map[string]any{"id": map[string]any{"uid": 0, "gid": 0}}, "rlimits": []any{}, "supplementalGroups": []any{}},
		"platform":       map[string]any{"architecture": "arm64", "os": "linux"},
		"resources":      map[string]any{"cpus": ct.CPUs, "memoryInBytes": ct.Memory},
		"rosetta":        ct.Rosetta,
		"runtimeHandler": "container-runtime-linux",
		"sysctls":        map[string]any{},
	}
	if c.atLeast(0, 12, 0) {
		caps := []string{}
		for _, cp := range ct.CapAdd {
			if !strings.HasPrefix(cp, "CAP_") {
				cp = "CAP_" + cp
			}
			caps = append(caps, cp)
		}
		config["capAdd"], config["capDrop"] = caps, []string{}
	}
	var networks []any
	if ct.State == "running" && ct.IP != "" {
		gw, mac := "192.168.64.1", "f2:1a:6b:3c:9d:04"
		if ct.Gateway != "" { // e2e mode: the container's real network (netns.go)
			gw, mac = ct.Gateway, ct.MAC
		}
		if c.atLeast(0, 8, 0) {
			networks = append(networks, map[string]any{"network": "default", "hostname": ct.ID, "ipv4Address": ct.IP + "/24", "ipv4Gateway": gw, "macAddress": mac})
		} else {
			networks = append(networks, map[string]any{"network": "default", "hostname": ct.ID, "address": ct.IP + "/24", "gateway": gw})
		}
	}
	if networks == nil {
		networks = []any{} // a stopped container has networks: []
	}
	if c.atLeast(1, 0, 0) {
		config["creationDate"] = ct.Created.Format(time.RFC3339)
		status := map[string]any{"state": ct.State, "networks": networks}
		if ct.Started != nil {
			status["startedDate"] = ct.Started.Format(time.RFC3339)
		}
		return map[string]any{"id": ct.ID, "configuration": config, "status": status}
	}
	o := ordered{{"status", ct.State}, {"configuration", config}, {"networks", networks}}
	if ct.Started != nil && c.atLeast(0, 8, 0) {
		o = append(o, kv{"startedDate", ct.Started.Sub(appleEpoch).Seconds()})
	}
	return o
}
