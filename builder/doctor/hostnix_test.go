package doctor

import (
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/nixconf"
)

// Issue 18 point 5: doctor said Nix 2.31.0–2.31.2 support port URIs, yet
// those run a port URI to localhost on the Mac itself; it says why not.
func TestHostNixCheckNamesThePortURIBug(t *testing.T) {
	for in, want := range map[string]string{
		"nix (Nix) 2.31.2": "run a port URI to localhost on this Mac",
		"nix (Nix) 2.31.3": "supports ssh-ng://user@host:port",
		"nix (Nix) 2.28.4": "needs the ssh_config alias form: port URIs need Nix ≥ 2.31.3",
	} {
		nv, err := nixconf.ParseNixVersion(in)
		if err != nil {
			t.Fatal(err)
		}
		c := hostNixCheck(nv)
		if c.Result != OK || !strings.Contains(c.Detail, want) {
			t.Errorf("%s: %+v, want %q", in, c, want)
		}
	}
}
