package runtime

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wrapix/wrapix-builder/builder/problem"
)

// VolumeInfo is what `volume inspect` says about a named volume.
type VolumeInfo struct {
	Name string
	// Source is the volume's image file on the Mac
	// (~/Library/Application Support/com.apple.container/volumes/<name>/volume.img,
	// VolumesService.swift blockPath, 0.6.0 … 1.2.2).
	Source string
	// SizeBytes is the filesystem's size (512 GiB unless created with -s);
	// 0 when the CLI did not say.
	SizeBytes int64
}

// rawVolume reads both shapes: 0.x prints the Volume struct itself
// ({name, source, sizeInBytes, createdAt, …}: VolumeInspect.swift 0.6.0 …
// 0.12.3), 1.x a VolumeResource {id, configuration: {name, source,
// sizeInBytes, creationDate, …}} (VolumeResource.swift, 1.0.0 … 1.2.2).
type rawVolume struct {
	volumeFields
	Configuration *volumeFields `json:"configuration"`
}

type volumeFields struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	SizeInBytes uint64 `json:"sizeInBytes"`
}

// ParseVolumes reads `volume inspect` output of any version.
func ParseVolumes(data []byte) ([]VolumeInfo, error) {
	var raws []rawVolume
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, err
	}
	var vs []VolumeInfo
	for _, r := range raws {
		f := r.volumeFields
		if r.Configuration != nil {
			f = *r.Configuration
		}
		if f.Name == "" {
			return nil, fmt.Errorf("a volume without a name")
		}
		size := int64(f.SizeInBytes)
		if size < 0 { // beyond int64: not a size any Mac has
			size = 0
		}
		vs = append(vs, VolumeInfo{Name: f.Name, Source: f.Source, SizeBytes: size})
	}
	return vs, nil
}

// VolumeInspect describes the named volume, or returns nil when there is
// none. A failure is confirmed with the listing: the "not found" errors of
// `volume inspect` differ by version (invalidArgument before 1.0, notFound after).
func (c *CLI) VolumeInspect(ctx context.Context, name string) (*VolumeInfo, error) {
	if _, err := c.Version(ctx); err != nil {
		return nil, err
	}
	out, err := c.exec(ctx, c.timeout(), "volume", "inspect", name)
	if err != nil {
		if exists, lerr := c.volumeExists(ctx, name); lerr == nil && !exists {
			return nil, nil
		}
		return nil, asProblem(err)
	}
	vs, err := ParseVolumes(out)
	if err != nil {
		return nil, problem.Wrap(problem.Runtime, err, "`container volume inspect "+name+"` printed output we cannot read",
			"upgrade Apple's container CLI; if it persists, report it with the output of that command")
	}
	for i := range vs {
		if vs[i].Name == name {
			return &vs[i], nil
		}
	}
	return nil, nil
}

// VolumeRemove deletes the named volume; a missing one counts as removed.
// The CLI refuses while any container, running or stopped, references it.
func (c *CLI) VolumeRemove(ctx context.Context, name string) error {
	if _, err := c.Version(ctx); err != nil {
		return err
	}
	exists, err := c.volumeExists(ctx, name)
	if err != nil || !exists {
		return err
	}
	if _, err := c.exec(ctx, c.timeout(), "volume", "rm", name); err != nil {
		if exists, lerr := c.volumeExists(ctx, name); lerr == nil && !exists {
			return nil
		}
		return asProblem(err)
	}
	return nil
}
