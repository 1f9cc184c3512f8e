package setup

import (
	"encoding/hex"
	"net"
	"strings"
)

// Bridge is a vmnet bridge on the Mac (the host side of a container
// network): its name, the host's address on it and its subnet.
type Bridge struct {
	Name string
	Addr string
	Net  *net.IPNet
}

// VMNetBridges reads `ifconfig` output (macOS) for bridges with a vmnet
// member (vmenetN: Apple's Virtualization framework, which the container
// runtime uses) and an IPv4 address. vmnet chooses the subnet and the
// bridge's number, so neither is assumed.
func VMNetBridges(ifconfig string) []Bridge {
	var out []Bridge
	var name string
	var nets []Bridge
	vmnet := false
	flush := func() {
		if strings.HasPrefix(name, "bridge") && vmnet {
			out = append(out, nets...)
		}
	}
	for _, l := range strings.Split(ifconfig, "\n") {
		if l != "" && l[0] != ' ' && l[0] != '\t' {
			flush()
			name, _, _ = strings.Cut(l, ":")
			nets, vmnet = nil, false
			continue
		}
		f := strings.Fields(l)
		switch {
		case len(f) >= 4 && f[0] == "inet" && f[2] == "netmask":
			ip := net.ParseIP(f[1]).To4()
			m, err := hex.DecodeString(strings.TrimPrefix(f[3], "0x"))
			if ip == nil || err != nil || len(m) != 4 {
				continue
			}
			mask := net.IPMask(m)
			if ones, bits := mask.Size(); bits == 0 || ones == 0 {
				continue // not a contiguous mask
			}
			nets = append(nets, Bridge{Name: name, Addr: ip.String(), Net: &net.IPNet{IP: ip.Mask(mask), Mask: mask}})
		case len(f) >= 2 && f[0] == "member:" && strings.HasPrefix(f[1], "vmenet"):
			vmnet = true
		}
	}
	flush()
	return out
}

// ContainerBridges is the bridge whose subnet holds the container's IP, or
// every vmnet bridge when the IP is not known (the builder is stopped, or
// setup runs as root, who cannot ask the user's runtime).
func ContainerBridges(bridges []Bridge, containerIP string) []Bridge {
	if containerIP == "" {
		return bridges
	}
	ip := net.ParseIP(containerIP)
	for _, b := range bridges {
		if ip != nil && b.Net.Contains(ip) {
			return []Bridge{b}
		}
	}
	return nil
}
