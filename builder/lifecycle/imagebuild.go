package lifecycle

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wrapix/wrapix-builder/builder/problem"
)

// ImageBuildTimeout bounds a first start's `nix build` of the image (it
// downloads the Linux closure from the binary cache).
const ImageBuildTimeout = time.Hour

// nixCandidates are where Nix lives when PATH is launchd's bare
// /usr/bin:/bin:/usr/sbin:/sbin (a LaunchAgent, an app).
func nixCandidates() []string {
	c := []string{"/nix/var/nix/profiles/default/bin/nix", "/run/current-system/sw/bin/nix"}
	if u := os.Getenv("USER"); u != "" {
		c = append(c, "/etc/profiles/per-user/"+u+"/bin/nix")
	}
	if h, err := os.UserHomeDir(); err == nil {
		c = append(c, filepath.Join(h, ".nix-profile/bin/nix"))
	}
	return c
}

// FindNix finds the user's nix.
func FindNix() (string, error) {
	if p, err := exec.LookPath("nix"); err == nil {
		return p, nil
	}
	for _, p := range nixCandidates() {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("nix is not on PATH nor in " + strings.Join(nixCandidates(), ", "))
}

// buildImage builds the image pinned to this version (image-flake's
// builder-image output) with the user's own Nix and returns the OCI tar.
func (b *Builder) buildImage(ctx context.Context) (string, error) {
	ref := b.Config.ImageFlake + "#builder-image"
	nix, err := FindNix()
	if err != nil {
		return "", problem.Wrap(problem.Runtime, err, "the builder image "+b.Config.Image+" is not loaded, and building it needs Nix",
			"install Nix (https://nixos.org/download), or build the image elsewhere (`nix build "+ref+"`) and set image-archive in "+b.Layout.ConfigFile())
	}
	b.say("the builder image %s is not loaded: building it with Nix from %s (the first time downloads its Linux tools)…", b.Config.Image, ref)
	ctx, cancel := context.WithTimeout(ctx, ImageBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nix, "--extra-experimental-features", "nix-command flakes", "build", "--no-link", "--json", ref)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", problem.Wrap(problem.Runtime, err, "cannot run "+nix, "check your Nix installation")
	}
	var last []string // the end of Nix's output, for the error
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		b.say("nix: %s", line)
		last = append(last, line)
		if len(last) > 3 {
			last = last[1:]
		}
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return "", problem.Wrap(problem.Timeout, ctx.Err(), fmt.Sprintf("building the builder image with Nix took longer than %s", ImageBuildTimeout), "run `nix build "+ref+"` yourself and set image-archive to its result in "+b.Layout.ConfigFile())
		}
		return "", problem.Wrap(problem.Runtime, fmt.Errorf("%w: %s", err, strings.Join(last, " / ")), "building the builder image with Nix ("+ref+") failed",
			"fix the error shown, or set image-flake (or image-archive) in "+b.Layout.ConfigFile())
	}
	var results []struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil || len(results) == 0 || results[0].Outputs["out"] == "" {
		return "", problem.Newf(problem.Runtime, "report this as a bug", "`nix build --json %s` printed no output path: %q", ref, stdout.String())
	}
	return results[0].Outputs["out"], nil
}
