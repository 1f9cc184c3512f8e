// Package config reads $XDG_CONFIG_HOME/wrapix/config.toml. Every key has a
// default; a missing file means all defaults. A bad value is an error naming
// the file, the key and what is allowed.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/toolpath"
	"github.com/wrapix/wrapix-builder/builder/version"
)

// VolumeSize is the size of the store volume Apple's CLI creates: a sparse
// 512 GiB image (VolumeStorage.defaultVolumeSizeBytes, 0.6.0 … 1.2.2).
const VolumeSize = 512 << 30

// Store backends for the builder's /nix.
const (
	StoreVolume    = "volume"    // an Apple named volume (ext4 image): the default
	StoreDirectory = "directory" // builder-nix/ on the Mac, over VirtioFS
)

// Config is the validated configuration.
type Config struct {
	CPUs              int           // container CPUs (integer, as the CLI wants)
	MemoryBytes       int64         // container memory
	Port              int           // loopback port Nix connects to: `serve` owns it and wakes the builder
	ContainerPort     int           // loopback port the container publishes its sshd on (port + 1 unless set)
	IdleStop          time.Duration // stop the builder after this long unused (0 = never)
	ImageFlake        string        // flake whose builder-image output a first start builds when the image is missing
	Systems           []string      // systems the builder builds for
	MaxJobs           int           // parallel builds Nix sends to it
	SpeedFactor       int           // Nix's preference among builders
	SupportedFeatures []string      // Nix system features
	Store             string        // StoreVolume or StoreDirectory
	Volume            string        // named volume for StoreVolume
	Image             string        // image reference to run
	ImageArchive      string        // OCI-layout tar to load when Image is missing ("" = none)
	StoreSizeCap      int64         // garbage-collect the builder's store above this size
	UseSubstitutes    bool          // builders-use-substitutes: the builder fetches from caches itself
	Sandbox           bool          // the Nix build sandbox inside the builder
	StartTimeout      time.Duration // how long start waits for SSH and nix-daemon
	ContainerCLI      string        // Apple's container CLI; "" = $PATH, then the well-known places
	NotifyAfter       time.Duration // the app notifies finished builds that took longer (0: never)

	File string // where it was read from ("" when defaults only)
}

// Defaults returns the configuration used when no file sets a key.
func Defaults() Config {
	return Config{
		CPUs:              4,
		MemoryBytes:       8 << 30,
		Port:              2222,
		Systems:           []string{"aarch64-linux"},
		MaxJobs:           4,
		SpeedFactor:       1,
		SupportedFeatures: []string{"benchmark", "big-parallel"},
		Store:             StoreVolume,
		Volume:            "wrapix-builder-nix",
		Image:             version.Image(),
		StoreSizeCap:      100 << 30,
		UseSubstitutes:    true,
		Sandbox:           true,
		StartTimeout:      5 * time.Minute,
		NotifyAfter:       60 * time.Second,
		ContainerPort:     2223,
		ImageFlake:        version.ImageFlake,
		IdleStop:          30 * time.Minute,
	}
}

// key describes one config key: its allowed values (for messages) and how to apply it.
type key struct {
	allowed string
	apply   func(c *Config, v any) error
}

var (
	featureRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	volumeRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	imageRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:@-]*$`)
)

// KnownSystems are the systems the builder can offer (x86_64 needs Rosetta in the guest).
var KnownSystems = []string{"aarch64-linux", "x86_64-linux"}

var keys = map[string]key{
	"cpus": {"an integer from 1 to 64", func(c *Config, v any) error {
		n, err := intIn(v, 1, 64)
		c.CPUs = n
		return err
	}},
	"memory": {`a size with a unit from "1GiB" to "1TiB", e.g. "8GiB" or "6144MiB"`, func(c *Config, v any) error {
		n, err := sizeIn(v, 1<<30, 1<<40)
		c.MemoryBytes = n
		return err
	}},
	"port": {"an integer from 1024 to 65535 (a free port on 127.0.0.1)", func(c *Config, v any) error {
		n, err := intIn(v, 1024, 65535)
		c.Port = n
		return err
	}},
	"container-port": {"an integer from 1024 to 65535, not port (a free port on 127.0.0.1)", func(c *Config, v any) error {
		n, err := intIn(v, 1024, 65535)
		c.ContainerPort = n
		return err
	}},
	"idle-stop": {`a duration from "1s" to "24h", e.g. "30m", or "0" (never stop)`, func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			if n, isInt := v.(int64); isInt && n == 0 {
				c.IdleStop = 0
				return nil
			}
			return errors.New("not a string")
		}
		if s == "0" {
			c.IdleStop = 0
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return errors.New("not a duration in range")
		}
		c.IdleStop = d
		return nil
	}},
	"image-flake": {`a flake reference such as "github:wrapix/wrapix-builder" or an absolute path`, func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok || s == "" || strings.ContainsAny(s, " \t\n\r\x00#") {
			return errors.New("not a flake reference (no spaces, no #attribute)")
		}
		c.ImageFlake = s
		return nil
	}},
	"systems": {`a non-empty list of "aarch64-linux", "x86_64-linux"`, func(c *Config, v any) error {
		l, err := stringList(v, func(s string) bool { return slices.Contains(KnownSystems, s) })
		if err == nil && len(l) == 0 {
			err = errors.New("the list is empty")
		}
		c.Systems = l
		return err
	}},
	"max-jobs": {"an integer from 1 to 256", func(c *Config, v any) error {
		n, err := intIn(v, 1, 256)
		c.MaxJobs = n
		return err
	}},
	"speed-factor": {"an integer from 1 to 100", func(c *Config, v any) error {
		n, err := intIn(v, 1, 100)
		c.SpeedFactor = n
		return err
	}},
	"supported-features": {`a list of lower-case feature names, e.g. ["benchmark", "big-parallel"]`, func(c *Config, v any) error {
		l, err := stringList(v, featureRe.MatchString)
		c.SupportedFeatures = l
		return err
	}},
	"store": {`"volume" (an Apple named volume, recommended) or "directory" (builder-nix/ on a case-sensitive volume)`, func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok || (s != StoreVolume && s != StoreDirectory) {
			return errors.New("not one of the allowed values")
		}
		c.Store = s
		return nil
	}},
	"volume": {"a volume name of letters, digits, '_', '.', '-'", func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok || !volumeRe.MatchString(s) || len(s) > 63 {
			return errors.New("not a valid volume name")
		}
		c.Volume = s
		return nil
	}},
	"image": {`an image reference such as "wrapix-builder:` + version.Version + `"`, func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok || !imageRe.MatchString(s) {
			return errors.New("not a valid image reference")
		}
		c.Image = s
		return nil
	}},
	"image-archive": {"an absolute path (or ~/…) to an OCI-layout .tar", func(c *Config, v any) error {
		p, err := absolutePath(v, true)
		c.ImageArchive = p
		return err
	}},
	// At most what the store volume holds: Apple's volumes are 512 GiB
	// (VolumeStorage.defaultVolumeSizeBytes; we never pass -s), and a larger
	// cap would never collect before the volume is full.
	"store-size-cap": {`a size with a unit from "1GiB" to "512GiB" (the store volume's size), e.g. "100GiB"`, func(c *Config, v any) error {
		n, err := sizeIn(v, 1<<30, VolumeSize)
		c.StoreSizeCap = n
		return err
	}},
	"use-substitutes": {"true or false", func(c *Config, v any) error {
		b, ok := v.(bool)
		if !ok {
			return errors.New("not a boolean")
		}
		c.UseSubstitutes = b
		return nil
	}},
	"sandbox": {"true or false", func(c *Config, v any) error {
		b, ok := v.(bool)
		if !ok {
			return errors.New("not a boolean")
		}
		c.Sandbox = b
		return nil
	}},
	"container-cli": {"the absolute path of Apple's `container` binary, e.g. \"/usr/local/bin/container\"", func(c *Config, v any) error {
		p, err := absolutePath(v, false)
		if err != nil {
			return err
		}
		if err := toolpath.Executable(p); err != nil {
			return err
		}
		c.ContainerCLI = p
		return nil
	}},
	"start-timeout": {`a duration from "10s" to "1h", e.g. "5m"`, func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return errors.New("not a string")
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 10*time.Second || d > time.Hour {
			return errors.New("not a duration in range")
		}
		c.StartTimeout = d
		return nil
	}},
	"notify-after": {`a duration from "0s" (never) to "24h", e.g. "60s": the app notifies finished builds that took longer`, func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return errors.New("not a string")
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 24*time.Hour {
			return errors.New("not a duration in range")
		}
		c.NotifyAfter = d
		return nil
	}},
}

// Keys lists the known keys, sorted.
func Keys() []string {
	out := make([]string, 0, len(keys))
	for k := range keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Load reads file; a missing file gives the defaults. max-jobs follows cpus
// unless set.
func Load(file string) (Config, error) {
	c := Defaults()
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, problem.Wrap(problem.Config, err, "cannot read "+file, "check the file's permissions")
	}
	c, err = Parse(data, file)
	return c, err
}

// maxOwnedFile caps what root reads of a user's config.toml (a real one is
// a few hundred bytes).
const maxOwnedFile = 64 << 10

// LoadOwned is Load for root acting for the user uid (setup under sudo,
// issue 16): the file is the user's, so root opens it as one would open
// untrusted input — never through a link, never a FIFO or device (opening
// does not block: O_NONBLOCK), at most maxOwnedFile bytes, and owned by uid
// (uid < 0: by anyone). So whatever an error quotes from it is text its
// owner wrote, never a root-only file linked or hard-linked into place.
func LoadOwned(file string, uid int) (Config, error) {
	fix := "make it a regular file of at most 64 KiB that you own (cp -L, chown)"
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return Defaults(), nil
	}
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK) { // EMLINK: FreeBSD's O_NOFOLLOW error
		return Defaults(), problem.Newf(problem.Config, fix, "%s is a symbolic link; setup, as root, reads only your own regular file", file)
	}
	if err != nil {
		return Defaults(), problem.Wrap(problem.Config, err, "cannot read "+file, "check the file's permissions")
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Defaults(), problem.Wrap(problem.Config, err, "cannot read "+file, "")
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return Defaults(), problem.Newf(problem.Config, fix, "%s is not a regular file", file)
	case uid >= 0 && (!ok || int(st.Uid) != uid):
		return Defaults(), problem.Newf(problem.Config, fix, "%s is not owned by uid %d, the user setup acts for", file, uid)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxOwnedFile+1))
	if err != nil {
		return Defaults(), problem.Wrap(problem.Config, err, "cannot read "+file, "")
	}
	if len(data) > maxOwnedFile {
		return Defaults(), problem.Newf(problem.Config, fix, "%s is larger than %d bytes", file, maxOwnedFile)
	}
	return Parse(data, file)
}

// Parse validates the TOML text of a config file called name.
func Parse(data []byte, name string) (Config, error) {
	c := Defaults()
	c.File = name
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return c, problem.Wrap(problem.Config, err, name+": not valid TOML", "fix the syntax at the line shown")
	}
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names) // report the first bad key deterministically
	_, maxJobsSet := raw["max-jobs"]
	for _, k := range names {
		spec, ok := keys[k]
		if !ok {
			return c, problem.Newf(problem.Config, "remove it or use one of: "+strings.Join(Keys(), ", "),
				"%s: unknown key %q", name, k)
		}
		if err := spec.apply(&c, raw[k]); err != nil {
			return c, problem.Newf(problem.Config, "set "+k+" to "+spec.allowed,
				"%s: key %q: %s is not allowed (%v)", name, k, render(raw[k]), err)
		}
	}
	if !maxJobsSet {
		c.MaxJobs = c.CPUs
	}
	if _, set := raw["container-port"]; !set {
		c.ContainerPort = c.Port + 1
		if c.ContainerPort > 65535 {
			c.ContainerPort = c.Port - 1 // the one port above the top has no neighbour there
		}
	}
	if c.ContainerPort == c.Port {
		return c, problem.Newf(problem.Config, "set container-port to another free port, e.g. "+strconv.Itoa(c.Port+1),
			"%s: key \"container-port\": %d is the same as port", name, c.ContainerPort)
	}
	return c, nil
}

func render(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	default:
		return fmt.Sprintf("%v", v)
	}
}

func intIn(v any, lo, hi int64) (int, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, errors.New("not an integer")
	}
	if n < lo || n > hi {
		return 0, errors.New("out of range")
	}
	return int(n), nil
}

func sizeIn(v any, lo, hi int64) (int64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, errors.New(`not a string with a unit, e.g. "8GiB"`)
	}
	n, err := ParseSize(s)
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, errors.New("out of range")
	}
	return n, nil
}

func stringList(v any, valid func(string) bool) ([]string, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, errors.New("not a list of strings")
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok || !valid(s) {
			return nil, fmt.Errorf("%s is not allowed", render(it))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

var sizeRe = regexp.MustCompile(`^(\d+)\s*([KMGTP])(IB|B)?$`)

// ParseSize parses a binary size with a unit: "8G", "8GiB", "512MiB". A bare
// number is refused on purpose: Apple's CLI reads it as bytes.
func ParseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("%q has no unit (K, M, G, T, P, optionally with iB)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, err
	}
	shift := map[string]uint{"K": 10, "M": 20, "G": 30, "T": 40, "P": 50}[m[2]]
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

// HumanSize renders bytes approximately, for status lines.
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// absolutePath reads a path value: a string, ~/… expanded, absolute (or
// empty when allowEmpty).
func absolutePath(v any, allowEmpty bool) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", errors.New("not a string")
	}
	p, err := expandHome(s)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(p) && !(allowEmpty && p == "") {
		return "", errors.New("not an absolute path")
	}
	return p, nil
}

func expandHome(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, p[1:]), nil
	}
	return p, nil
}
