package paths

import (
	"path/filepath"
	"testing"
)

func TestLayout(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "relative/ignored") // the XDG spec ignores relative values
	t.Setenv("WRAPIX_CONFIG_DIR", "")
	l, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if l.DataDir != "/home/u/.local/share/wrapix" || l.ConfigFile() != "/home/u/.config/wrapix/config.toml" ||
		l.KeysDir() != "/home/u/.local/share/wrapix/builder-keys" || l.GuestDir() != filepath.Join(l.KeysDir(), "guest") ||
		l.StoreDir() != "/home/u/.local/share/wrapix/builder-nix" {
		t.Fatalf("%+v", l)
	}
	t.Setenv("XDG_DATA_HOME", "/data")
	t.Setenv("WRAPIX_CONFIG_DIR", "/nix/store/abc-wrapix-config")
	l, _ = FromEnv()
	if l.DataDir != "/data/wrapix" || l.ConfigFile() != "/nix/store/abc-wrapix-config/config.toml" {
		t.Fatalf("%+v", l)
	}
	if o := l.Override("/d", ""); o.DataDir != "/d" || o.ConfigDir != l.ConfigDir {
		t.Fatalf("override %+v", o)
	}
}
