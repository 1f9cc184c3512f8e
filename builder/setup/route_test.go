package setup

import (
	"os"
	"testing"
)

// Issue 18 point 7: the route fix was always 192.168.64.0/24 on bridge100;
// vmnet picks the subnet (macOS 26) and Macs show other bridges. The
// bridges come from ifconfig (a Mac's output with a VPN's utun, a
// Thunderbolt bridge without vmnet, and two vmnet bridges), the container's
// by its IP.
func TestVMNetBridgeOfTheContainer(t *testing.T) {
	out, err := os.ReadFile("testdata/ifconfig-darwin.txt")
	if err != nil {
		t.Fatal(err)
	}
	bridges := VMNetBridges(string(out))
	if len(bridges) != 2 || bridges[0].Name != "bridge100" || bridges[0].Net.String() != "192.168.66.0/24" || bridges[0].Addr != "192.168.66.1" ||
		bridges[1].Name != "bridge103" || bridges[1].Net.String() != "192.168.128.0/24" {
		t.Fatalf("bridges %+v", bridges)
	}
	for _, c := range []struct{ ip, want string }{
		{"192.168.128.2", "bridge103"}, {"192.168.66.5", "bridge100"}, {"192.168.64.2", ""}, {"", ""},
	} {
		got := ContainerBridges(bridges, c.ip)
		if c.want == "" && c.ip != "" && len(got) != 0 || c.want != "" && (len(got) != 1 || got[0].Name != c.want) {
			t.Errorf("container at %q: %+v, want %q", c.ip, got, c.want)
		}
	}
	// Not knowing the container's IP, every vmnet bridge is a candidate.
	if got := ContainerBridges(bridges, ""); len(got) != 2 {
		t.Errorf("without an IP: %+v", got)
	}
	if got := VMNetBridges("garbage\n\tinet 1.2.3.4 netmask 0xzz\n"); len(got) != 0 {
		t.Errorf("garbage: %+v", got)
	}
}
