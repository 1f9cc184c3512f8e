//go:build linux

package main

// The container's own network in e2e mode, shaped as Apple's runtime gives
// it (shared/reference/apple-container.md §3; apple/container
// ReservedVmnetNetwork.swift: the gateway is the subnet's first address):
// a bridge per stand-in state stands for vmnet's bridge100 and holds the
// gateway address; each running container is a network namespace whose
// eth0 (a veth with its other end on the bridge) has an address on the
// subnet and a default route via the gateway. The published-port forwarder
// (forward.go) connects from the host to the container's address, so sshd's
// peer is the gateway, as on a Mac. No NAT (the host's ip_forward is left
// alone): the container reaches the host at the gateway address, nothing
// beyond it.
//
// The subnet: vmnet's is 192.168.64.0/24, but many stand-ins run at once
// here (parallel test packages, several people on one machine), so each
// state directory gets its own /24 in 192.168.64.0–192.168.191.0: the first
// from a start derived from the directory's path that no host route or
// address covers, chosen under a machine-wide lock. The bridge lives while
// a container of the state runs; the last one's stop removes it.

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// network is the state's subnet 192.168.<Octet>.0/24 and its bridge.
type network struct {
	Octet  int    `json:"octet"`
	Bridge string `json:"bridge"`
}

func (n *network) addr(host int) string { return fmt.Sprintf("192.168.%d.%d", n.Octet, host) }
func (n *network) gateway() string      { return n.addr(1) }

// netTag names this state's interfaces (at most 15 bytes each).
func netTag(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	h := fnv.New32a()
	h.Write([]byte(abs))
	return fmt.Sprintf("%08x", h.Sum32())
}

func bridgeName(stateDir string) string { return "wbr" + netTag(stateDir) }

// vethName is the host end of a container's eth0: by its address, unique
// among the state's running containers.
func vethName(stateDir string, host int) string {
	return fmt.Sprintf("wbv%s%d", netTag(stateDir), host)
}

func ipTool() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	return "/usr/sbin/ip"
}

// ipBatch runs `ip -batch -` with lines, inside the network namespace of
// pid when pid > 0.
func ipBatch(pid int, lines ...string) error {
	argv := []string{ipTool(), "-batch", "-"}
	if pid > 0 {
		argv = append([]string{"nsenter", "--net=/proc/" + strconv.Itoa(pid) + "/ns/net"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func interfaceExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// subnetTaken: a host route or address already covers 192.168.octet.0/24.
func subnetTaken(octet int) bool {
	_, mine, _ := net.ParseCIDR(fmt.Sprintf("192.168.%d.0/24", octet))
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (mine.Contains(ipn.IP) || ipn.Contains(mine.IP)) && !ipn.IP.IsLoopback() {
				return true
			}
		}
	}
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return true // cannot tell: take none
	}
	for _, l := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 { // the default route covers all, routes nothing here
			continue
		}
		le := func(v uint64) net.IP { return net.IPv4(byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }
		route := &net.IPNet{IP: le(dst).To4(), Mask: net.IPMask(le(mask).To4())}
		if route.Contains(mine.IP) || mine.Contains(route.IP) {
			return true
		}
	}
	return false
}

// ensureBridge brings up the state's bridge with the gateway address,
// choosing the subnet first if the state has none or another took it.
func (c *cli) ensureBridge() (*network, error) {
	n := c.st.st.Net
	if n != nil && interfaceExists(n.Bridge) {
		return n, nil
	}
	// One chooser at a time on this machine: the check and the claim are one step.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "wrapix-container-standin-net.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	bridge := bridgeName(c.st.dir)
	h := fnv.New32a()
	h.Write([]byte(bridge))
	start := int(h.Sum32() % 128)
	if n != nil && n.Octet >= 64 {
		start = n.Octet - 64 // the one this state had, if still free
	}
	octet := 0
	for i := 0; i < 128; i++ {
		if o := 64 + (start+i)%128; !subnetTaken(o) {
			octet = o
			break
		}
	}
	if octet == 0 {
		return nil, fmt.Errorf("no free /24 in 192.168.64.0–192.168.191.0 for the container network")
	}
	n = &network{Octet: octet, Bridge: bridge}
	if interfaceExists(bridge) { // left by an invocation killed before it saved the state
		ipBatch(0, "link del "+bridge)
	}
	// forward_delay 0: a port forwards at once (no STP here).
	if err := ipBatch(0, "link add "+bridge+" type bridge forward_delay 0",
		"addr add "+n.gateway()+"/24 dev "+bridge, "link set "+bridge+" up"); err != nil {
		ipBatch(0, "link del "+bridge)
		return nil, err
	}
	c.st.st.Net = n
	return n, nil
}

// attachNetwork gives the container whose first process is pid (in its own
// network namespace, waiting for this) eth0 on the state's subnet, lo, and
// the default route via the gateway.
func (c *cli) attachNetwork(ct *container, pid int) error {
	n, err := c.ensureBridge()
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, o := range c.st.st.Containers {
		if o != ct && o.State == "running" && o.Veth != "" {
			used[o.IP] = true
		}
	}
	host := 2
	for ; host < 255 && used[n.addr(host)]; host++ {
	}
	if host == 255 {
		return fmt.Errorf("no free address on %s.0/24", strings.TrimSuffix(n.addr(0), ".0"))
	}
	veth := vethName(c.st.dir, host)
	if interfaceExists(veth) { // left by a container that died without its stop
		ipBatch(0, "link del "+veth)
	}
	// Generated MACs start with f2 (DefaultNetworkService.allocate).
	mac := fmt.Sprintf("f2:1a:6b:%02x:%02x:%02x", n.Octet, host>>8, host&0xff)
	if err := ipBatch(0, fmt.Sprintf("link add %s type veth peer name eth0 address %s netns %d", veth, mac, pid),
		"link set "+veth+" master "+n.Bridge+" up"); err != nil {
		return err
	}
	ct.Veth, ct.IP, ct.Gateway, ct.MAC = veth, n.addr(host), n.gateway(), mac
	return ipBatch(pid, "link set lo up", "addr add "+ct.IP+"/24 dev eth0", "link set eth0 up", "route add default via "+n.gateway())
}

// detachNetwork removes the container's veth pair (the namespace goes with
// its last process) and, with the state's last running container, the bridge.
func (c *cli) detachNetwork(ct *container) {
	if ct.Veth != "" && interfaceExists(ct.Veth) {
		ipBatch(0, "link del "+ct.Veth)
	}
	ct.Veth, ct.Gateway, ct.MAC = "", "", ""
}

// pruneBridge removes the bridge once no container of the state runs with
// a network: after every invocation, so nothing outlives the containers.
func (c *cli) pruneBridge() {
	n := c.st.st.Net
	if n == nil {
		return
	}
	for _, ct := range c.st.st.Containers {
		if ct.State == "running" && ct.Veth != "" {
			return
		}
	}
	if interfaceExists(n.Bridge) {
		ipBatch(0, "link del "+n.Bridge)
	}
}
