package lifecycle

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/problem"
)

// ResetResult is what ResetStore did.
type ResetResult struct {
	Removed   []string // volumes or the directory
	KeyBackup string   // where the old host key went, when rotated
}

// ResetStore recreates the store from nothing, for after a suspected
// compromise of the builder: anything root inside it wrote persists in the
// store (README, "Trusting the builder"). It stops and deletes the builder
// container, deletes the store (both volumes a compaction alternates
// between, or the store directory) and, unless keepHostKey, rotates the host
// key, which sshd inside the builder could read. The client key never
// entered the builder and stays. The next start initialises a fresh store
// from the image.
func (b *Builder) ResetStore(ctx context.Context, keepHostKey bool, now time.Time) (ResetResult, error) {
	var res ResetResult
	l, err := b.lock(ctx, "reset-store")
	if err != nil {
		return res, err
	}
	defer l.Release()
	if _, err := b.CLI.Version(ctx); err != nil {
		return res, err
	}
	if b.Config.Store == config.StoreVolume {
		if _, err := b.recoverReclaim(ctx); err != nil {
			return res, err
		}
	}
	b.say("stopping and deleting the builder container…")
	if _, err := b.stopLocked(ctx); err != nil {
		return res, err
	}
	if b.Config.Store == config.StoreVolume {
		for _, v := range []string{b.Config.Volume, b.Config.Volume + AlternateSuffix} {
			info, err := b.CLI.VolumeInspect(ctx, v)
			if err != nil {
				return res, err
			}
			if info == nil {
				continue
			}
			b.say("deleting store volume %s…", v)
			if err := b.CLI.VolumeRemove(ctx, v); err != nil {
				return res, problem.Wrap(problem.KindOf(err), err, "cannot delete the store volume "+v,
					"stop every container that uses it (`container ls --all`), then run `wrapix-builder reset-store --yes` again")
			}
			res.Removed = append(res.Removed, v)
		}
		if err := removeDurable(b.recordPath()); err != nil {
			return res, err
		}
	} else {
		dir := b.Layout.StoreDir()
		b.say("deleting the store directory %s…", dir)
		if err := removeAllWritable(dir); err != nil {
			return res, problem.Wrap(problem.Internal, err, "cannot delete the store directory "+dir, "delete it yourself, then start")
		}
		res.Removed = append(res.Removed, dir)
	}
	if !keepHostKey {
		backup, err := keys.Rotate(b.Layout, keys.Which{Host: true}, now)
		if err != nil {
			return res, err
		}
		res.KeyBackup = backup
	}
	return res, nil
}

// removeAllWritable deletes a tree whose directories may be read-only (a
// Nix store's are 0555).
func removeAllWritable(dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Type()&fs.ModeSymlink == 0 {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}
