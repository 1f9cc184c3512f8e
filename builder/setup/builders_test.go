package setup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/nixconf"
)

// Issue 18 point 9: a `builders =` line, here in a file nix.conf includes,
// makes Nix ignore /etc/nix/machines; doctor said the builders entry was
// fine. Nix reads includes in place and the last `builders` wins
// (src/libutil/config.cc applyConfigFile).
func TestCheckSeesABuildersLineThatHidesTheMachinesFile(t *testing.T) {
	for _, c := range []struct {
		name, extra string
		ok          bool
	}{
		{"no builders line", "max-jobs = 2\n", true},
		{"builders naming the machines file", "builders = ssh://other x86_64-linux ; @/etc/nix/machines\n", true},
		{"builders without it", "builders = ssh://other x86_64-linux\n", false},
		{"emptied", "builders =\n", false},
		{"set, then set again with it", "builders = ssh://other\nbuilders = @/etc/nix/machines\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			apply(t, root, "linux", nil, &recorder{})
			conf, _ := os.ReadFile(filepath.Join(root, "etc/nix/nix.conf"))
			write(t, root, "/etc/nix/nix.conf", string(conf)+"!include /etc/nix/missing.conf\ninclude local.conf\n", 0o644)
			write(t, root, "/etc/nix/local.conf", c.extra, 0o644)
			st := Check(root, params())
			if c.ok != (st.NixConfig == StateOK) {
				t.Errorf("%+v", st)
			}
			if !c.ok && (st.NixConfig != StateIgnored || !strings.Contains(st.Detail, "/etc/nix/local.conf:1") || !strings.Contains(st.Detail, "@/etc/nix/machines")) {
				t.Errorf("the detail does not name the line and the fix: %+v", st)
			}
		})
	}
}

// The nix-darwin module's line file, left behind after the module was
// removed, is not read by a nix.conf without its builders setting.
func TestCheckIgnoresALeftoverModuleLineFile(t *testing.T) {
	root := t.TempDir()
	apply(t, root, "linux", nil, &recorder{})
	line, _ := os.ReadFile(filepath.Join(root, "etc/nix/machines"))
	write(t, root, nixconf.ModuleMachinesPath, string(line), 0o644)
	write(t, root, nixconf.MachinesPath, "", 0o644)
	if st := Check(root, params()); st.NixConfig == StateOK || !strings.Contains(st.Detail, nixconf.ModuleMachinesPath) {
		t.Errorf("%+v", st)
	}
	write(t, root, "/etc/nix/nix.conf", "builders = @/etc/nix/machines;@"+nixconf.ModuleMachinesPath+"\n", 0o644)
	if st := Check(root, params()); st.NixConfig != StateOK {
		t.Errorf("named in builders: %+v", st)
	}
}
