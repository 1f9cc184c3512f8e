// Package paths knows where Wrapix Builder keeps its files on the Mac (and on
// Linux, where it is developed and tested). It computes names; it creates nothing.
package paths

import (
	"errors"
	"os"
	"path/filepath"
)

// Layout is the seed's layout:
//
//	$XDG_DATA_HOME/wrapix/            (default ~/.local/share/wrapix)
//	├── builder-nix/                  persistent /nix when store = "directory"
//	├── builder-keys/                 host_ed25519, client_ed25519 (+ .pub); 0700
//	│   └── guest/                    what the container may see: host key + client public key
//	└── builder.lock                  serialises start/stop/rotate between the CLI and the app
//	$XDG_CONFIG_HOME/wrapix/config.toml   ($WRAPIX_CONFIG_DIR/config.toml when set)
type Layout struct {
	DataDir   string // $XDG_DATA_HOME/wrapix
	ConfigDir string // $XDG_CONFIG_HOME/wrapix
}

// FromEnv derives the layout from the XDG variables and $HOME.
func FromEnv() (Layout, error) {
	home, err := os.UserHomeDir()
	data := os.Getenv("XDG_DATA_HOME")
	conf := os.Getenv("XDG_CONFIG_HOME")
	if (data == "" || conf == "") && (err != nil || home == "") {
		return Layout{}, errors.New("cannot find the home directory: set $HOME (or $XDG_DATA_HOME and $XDG_CONFIG_HOME)")
	}
	if data == "" || !filepath.IsAbs(data) { // the XDG spec says relative values are ignored
		data = filepath.Join(home, ".local", "share")
	}
	if conf == "" || !filepath.IsAbs(conf) {
		conf = filepath.Join(home, ".config")
	}
	l := Layout{DataDir: filepath.Join(data, "wrapix"), ConfigDir: filepath.Join(conf, "wrapix")}
	if dir := os.Getenv("WRAPIX_CONFIG_DIR"); filepath.IsAbs(dir) { // set by the nix-darwin module
		l.ConfigDir = dir
	}
	return l, nil
}

// Override replaces the data and config directories where set (CLI flags).
func (l Layout) Override(dataDir, configDir string) Layout {
	if dataDir != "" {
		l.DataDir = dataDir
	}
	if configDir != "" {
		l.ConfigDir = configDir
	}
	return l
}

func (l Layout) KeysDir() string    { return filepath.Join(l.DataDir, "builder-keys") }
func (l Layout) GuestDir() string   { return filepath.Join(l.KeysDir(), "guest") }
func (l Layout) StoreDir() string   { return filepath.Join(l.DataDir, "builder-nix") }
func (l Layout) LockFile() string   { return filepath.Join(l.DataDir, "builder.lock") }
func (l Layout) ConfigFile() string { return filepath.Join(l.ConfigDir, "config.toml") }
