//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Stand-ins run side by side (parallel test packages): each state's
// container network gets a /24 of its own, never one the host already
// routes, and a state keeps its subnet while it is free.
func TestNetworkSubnetsDoNotClash(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes bridges")
	}
	newCLI := func() *cli {
		return &cli{st: &store{dir: t.TempDir(), st: state{Containers: map[string]*container{}}}}
	}
	a, b := newCLI(), newCLI()
	t.Cleanup(func() { a.pruneBridge(); b.pruneBridge() })
	na, err := a.ensureBridge()
	if err != nil {
		t.Fatal(err)
	}
	nb, err := b.ensureBridge()
	if err != nil {
		t.Fatal(err)
	}
	if na.Octet == nb.Octet {
		t.Fatalf("two states share 192.168.%d.0/24", na.Octet)
	}
	if again, err := b.ensureBridge(); err != nil || again.Octet != nb.Octet {
		t.Fatalf("a running state's subnet changed: %v %v", again, err)
	}
	// b's bridge goes; something else on the host takes its subnet meanwhile.
	b.pruneBridge()
	if interfaceExists(nb.Bridge) {
		t.Fatalf("bridge %s left after the state's last container", nb.Bridge)
	}
	dummy := "wbt" + netTag(b.st.dir)[:6] // another interface holding the subnet
	if out, err := exec.Command("ip", "link", "add", dummy, "type", "bridge").CombinedOutput(); err != nil {
		t.Skipf("cannot make an interface here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", dummy).Run() })
	if out, err := exec.Command("sh", "-c", fmt.Sprintf("ip addr add 192.168.%d.1/24 dev %s && ip link set %s up", nb.Octet, dummy, dummy)).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if !subnetTaken(nb.Octet) {
		t.Fatalf("192.168.%d.0/24 is routed on the host but not seen as taken", nb.Octet)
	}
	nb2, err := b.ensureBridge()
	if err != nil {
		t.Fatal(err)
	}
	if nb2.Octet == nb.Octet || nb2.Octet == na.Octet {
		t.Fatalf("took 192.168.%d.0/24, which the host or another state routes", nb2.Octet)
	}
}
