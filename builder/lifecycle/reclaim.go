package lifecycle

// Reclaiming the Mac's disk (`gc --compact`, docs/reclaim.md). The store
// volume is a sparse image that only grows: ext4 frees blocks inside it, but
// nothing trims them back to macOS (apple/container #1402; no discard through
// Virtualization.framework). So the live store is copied into a fresh volume
// and the old one deleted. The old volume stays the store until the copy is
// complete and verified; the switch is one atomic file in the data
// directory (StoreRecordFile); a journal (ReclaimJournalFile) lets any later
// start or compaction finish or undo an interrupted one.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/wrapix/wrapix-builder/builder/atomicfile"
	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/runtime"
)

const (
	// ReclaimContainer runs image/compact.sh with both volumes attached.
	ReclaimContainer = "wrapix-builder-reclaim"
	// StoreRecordFile names the volume that is the store, when it is not
	// the configured one (in the data directory).
	StoreRecordFile = "store-volume.json"
	// ReclaimJournalFile exists while a compaction is under way.
	ReclaimJournalFile = "reclaim.json"
	compactTarget      = "/wrapix/old" // the old store in the copy container (read-only)
	// AlternateSuffix makes the second name a store volume alternates with.
	AlternateSuffix = "-b"
)

var volumeNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`) // VolumeStorage.volumeNamePattern

// storeRecord is StoreRecordFile: which volume holds the store, for the
// configured `volume` it was made from (a changed config ignores it).
type storeRecord struct {
	Configured string `json:"configured"`
	Volume     string `json:"volume"`
}

// reclaimJournal is ReclaimJournalFile.
type reclaimJournal struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Token string `json:"token"`
}

func (b *Builder) recordPath() string  { return filepath.Join(b.Layout.DataDir, StoreRecordFile) }
func (b *Builder) journalPath() string { return filepath.Join(b.Layout.DataDir, ReclaimJournalFile) }

// ownVolume: one of the two names the configured volume alternates between.
func (b *Builder) ownVolume(name string) bool {
	return volumeNameRe.MatchString(name) && (name == b.Config.Volume || name == b.Config.Volume+AlternateSuffix)
}

// StoreVolume is the named volume that holds the store: the configured
// `volume`, or the one a compaction moved it to.
func (b *Builder) StoreVolume() (string, error) {
	var r storeRecord
	ok, err := readJSON(b.recordPath(), 4096, &r, fmt.Sprintf(
		"it names the volume that holds the store (docs/reclaim.md): write {\"configured\":%q,\"volume\":\"NAME\"} with NAME %s or %s, whichever `container volume ls` lists",
		b.Config.Volume, b.Config.Volume, b.Config.Volume+AlternateSuffix))
	if err != nil || !ok || r.Configured != b.Config.Volume {
		return b.Config.Volume, err
	}
	if !b.ownVolume(r.Volume) {
		return "", problem.Newf(problem.Config, fmt.Sprintf("write {\"configured\":%q,\"volume\":%q} (or %q) into it", b.Config.Volume, b.Config.Volume, b.Config.Volume+AlternateSuffix),
			"%s names the store volume %q, which is not %s or %s", b.recordPath(), r.Volume, b.Config.Volume, b.Config.Volume+AlternateSuffix)
	}
	return r.Volume, nil
}

// readJSON reads a small JSON file of ours; a missing file is ok == false.
func readJSON(path string, limit int64, v any, fix string) (ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, problem.Wrap(problem.Internal, err, "cannot read "+path, "")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("larger than %d bytes", limit)
	}
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		return false, problem.Wrap(problem.Config, err, path+" is damaged", fix)
	}
	return true, nil
}

// writeDurable replaces path atomically and syncs its directory, so the
// rename survives a crash.
func writeDurable(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o644); err != nil {
		return problem.Wrap(problem.Internal, err, "cannot write "+path, "")
	}
	return syncDir(filepath.Dir(path))
}

func removeDurable(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return problem.Wrap(problem.Internal, err, "cannot remove "+path, "")
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // not every filesystem syncs a directory; the rename is atomic anyway
	return nil
}

// ReclaimPending reports an interrupted compaction (its journal is there).
func (b *Builder) ReclaimPending() bool {
	_, err := os.Stat(b.journalPath())
	return err == nil
}

// Usage is the two numbers users ask about.
type Usage struct {
	// DiskBytes is the disk the store volume takes on the Mac: the
	// allocated blocks of its sparse image file. -1 when unknown.
	DiskBytes int64
	// UsedBytes is the store in use: the blocks the filesystem inside the
	// volume uses, measured on the running builder. -1 when unknown.
	UsedBytes int64
	// VolumeBytes is the volume's size (the most the store can hold). 0 when unknown.
	VolumeBytes int64
}

// VolumeUsage measures the store volume from the Mac: its image's allocated
// blocks (the path comes from `volume inspect`) and its size.
func (b *Builder) VolumeUsage(ctx context.Context) (Usage, error) {
	u := Usage{DiskBytes: -1, UsedBytes: -1}
	name, err := b.StoreVolume()
	if err != nil {
		return u, err
	}
	info, err := b.CLI.VolumeInspect(ctx, name)
	if err != nil || info == nil {
		return u, err
	}
	u.VolumeBytes = info.SizeBytes
	if n, ok := allocatedBytes(info.Source); ok && info.Source != "" {
		u.DiskBytes = n
	}
	return u, nil
}

// StoreInUse asks the running builder how much of its volume is used.
func (b *Builder) StoreInUse(ctx context.Context) (int64, error) {
	c, err := b.Dial(ctx)
	if err != nil {
		return -1, err
	}
	defer c.Close()
	out, err := c.Output(ctx, statFSCommand)
	if err != nil {
		return -1, err
	}
	return parseStatFS(string(out))
}

// statFSCommand measures the store volume from inside (busybox stat).
const statFSCommand = "stat -f -c '%S %b %f' /nix"

// parseStatFS reads `stat -f -c '%S %b %f'`: block size, blocks, free blocks.
func parseStatFS(out string) (int64, error) {
	var bsize, blocks, free int64
	if n, err := fmt.Sscanf(strings.TrimSpace(out), "%d %d %d", &bsize, &blocks, &free); err != nil || n != 3 ||
		bsize <= 0 || bsize > 1<<20 || blocks < 0 || free < 0 || free > blocks || blocks > (1<<62)/bsize {
		return -1, fmt.Errorf("unexpected `stat -f` output %q", out)
	}
	return (blocks - free) * bsize, nil
}

// ReclaimResult is what a compaction did.
type ReclaimResult struct {
	GC           GCResult
	From, To     string
	Before       Usage
	After        Usage
	Restarted    bool // the builder was running before and was started again
	Elapsed      time.Duration
	NothingToDo  bool
	RecoveredOld string // what an earlier interrupted compaction left, and what was done about it
}

// Reclaim collects garbage down to capBytes, then moves the live store into a
// fresh volume and deletes the old one, giving the freed blocks back to macOS.
func (b *Builder) Reclaim(ctx context.Context, capBytes int64) (ReclaimResult, error) {
	t0 := time.Now()
	var res ReclaimResult
	if b.Config.Store != config.StoreVolume {
		return res, problem.New(problem.Config, "`gc --compact` moves a store volume; this store is the directory "+b.Layout.StoreDir(),
			"run `wrapix-builder gc`: a directory store gives deleted files back to macOS by itself")
	}
	c, err := b.CLI.Get(ctx, ContainerName)
	if err != nil {
		return res, err
	}
	wasRunning := c.Running()
	if !wasRunning {
		b.say("starting the builder to collect garbage…")
		if _, err := b.Start(ctx); err != nil {
			return res, err
		}
	}
	if res.GC, err = b.GC(ctx, capBytes); err != nil {
		return res, err
	}
	if used, err := b.StoreInUse(ctx); err == nil {
		res.Before.UsedBytes = used
	}

	moveErr := b.moveStore(ctx, &res)
	if wasRunning && !errors.Is(moveErr, context.Canceled) {
		// Running again, on the new store or, after a failed copy, the old one.
		if _, err := b.Start(ctx); err != nil {
			if moveErr != nil { // the first failure is the one to fix
				b.say("could not start the builder again: %v", err)
				return res, moveErr
			}
			return res, err
		}
		res.Restarted = true
		if used, err := b.StoreInUse(ctx); err == nil && moveErr == nil {
			res.After.UsedBytes = used
		}
	}
	res.Elapsed = time.Since(t0)
	return res, moveErr
}

// moveStore is the move itself, under the lock: stop the builder, copy and
// verify, switch, delete the old volume.
func (b *Builder) moveStore(ctx context.Context, res *ReclaimResult) error {
	l, err := b.lock(ctx, "gc --compact")
	if err != nil {
		return err
	}
	defer l.Release()
	if res.RecoveredOld, err = b.recoverReclaim(ctx); err != nil {
		return err
	}
	from, err := b.StoreVolume()
	if err != nil {
		return err
	}
	to := b.Config.Volume
	if from == to {
		to += AlternateSuffix
	}
	res.From, res.To = from, to
	before, err := b.VolumeUsage(ctx)
	if err != nil {
		return err
	}
	res.Before.DiskBytes, res.Before.VolumeBytes = before.DiskBytes, before.VolumeBytes

	b.say("stopping the builder to copy its store…")
	if _, err := b.stopLocked(ctx); err != nil {
		return err
	}
	if err := b.ensureImage(ctx); err != nil {
		return err
	}
	if err := b.copyStore(ctx, from, to); err != nil {
		return err
	}
	// The switch: from here on the new volume is the store.
	if err := writeDurable(b.recordPath(), storeRecord{Configured: b.Config.Volume, Volume: to}); err != nil {
		return err
	}
	b.say("the store is now volume %s; deleting %s…", to, from)
	if err := b.CLI.VolumeRemove(ctx, from); err != nil {
		return problem.Wrap(problem.KindOf(err), err, "the store moved to volume "+to+" but the old volume "+from+" could not be deleted",
			"run `wrapix-builder gc --compact` again (it finishes the job) or `container volume rm "+from+"`")
	}
	if err := removeDurable(b.journalPath()); err != nil {
		return err
	}
	res.After, err = b.VolumeUsage(ctx)
	return err
}

// copyStore runs image/compact.sh in a container with the old volume
// read-only and a fresh one at /nix, and returns once the copy is verified.
// On failure the fresh volume is deleted and the old one stays the store.
func (b *Builder) copyStore(ctx context.Context, from, to string) (err error) {
	token, err := newToken()
	if err != nil {
		return err
	}
	if err := writeDurable(b.journalPath(), reclaimJournal{From: from, To: to, Token: token}); err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		// Undo what exists of the copy; the old volume is untouched.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if _, rerr := b.recoverReclaim(cctx); rerr != nil {
			b.say("could not clean up the interrupted copy (the next start does): %v", rerr)
		}
	}()
	// A leftover with the new name can only be an unfinished copy: the
	// record names the other one.
	if err := b.CLI.VolumeRemove(ctx, to); err != nil {
		return err
	}
	if _, err := b.CLI.VolumeEnsure(ctx, to); err != nil {
		return err
	}
	b.say("copying the store from volume %s to a fresh volume %s…", from, to)
	spec := runtime.RunSpec{
		Name:        ReclaimContainer,
		Image:       b.Config.Image,
		Labels:      map[string]string{LabelKey: "reclaim"},
		CPUs:        b.Config.CPUs,
		MemoryBytes: b.Config.MemoryBytes,
		Mounts: []runtime.MountSpec{
			{Source: from, Target: compactTarget, ReadOnly: true},
			{Source: to, Target: StoreTarget},
		},
		Env:        []string{"WRAPIX_COMPACT_TOKEN=" + token},
		Entrypoint: "/bin/sh",
		Args:       []string{"/compact.sh"},
	}
	if err := b.CLI.Run(ctx, spec); err != nil {
		return problem.Wrap(problem.Runtime, err, "cannot start the store copy", "see `wrapix-builder doctor`")
	}
	seen := map[string]bool{}
	var logs bytes.Buffer
	for {
		ct, err := b.CLI.Get(ctx, ReclaimContainer)
		if err != nil {
			return err
		}
		logs.Reset()
		_ = b.CLI.Logs(ctx, ReclaimContainer, false, 40, &logs, io.Discard)
		for _, line := range strings.Split(logs.String(), "\n") {
			if msg, ok := strings.CutPrefix(strings.TrimSpace(line), "wrapix-compact: "); ok && !seen[msg] && !strings.HasPrefix(msg, "verified ") {
				seen[msg] = true
				b.say("%s", plain(msg))
			}
		}
		if ct == nil || (!ct.Running() && ct.State != runtime.StateStopping) {
			break
		}
		select { // two container calls a round: a long copy must not keep the Mac busy
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	verified := false
	var last []string
	for _, line := range strings.Split(logs.String(), "\n") {
		line = strings.TrimSpace(line)
		if line == "wrapix-compact: verified "+token {
			verified = true
		}
		if line != "" {
			last = append(last, plain(line))
		}
	}
	if err := b.CLI.Delete(ctx, ReclaimContainer); err != nil {
		return err
	}
	if !verified {
		if len(last) > 5 {
			last = last[len(last)-5:]
		}
		return problem.Newf(problem.Unhealthy, "nothing was changed: the store is still volume "+from+"; `wrapix-builder ssh nix-store --verify --check-contents` checks it",
			"the store copy did not verify: %s", strings.Join(last, " | "))
	}
	return nil
}

// recoverReclaim finishes or undoes a compaction that was interrupted (the
// lock is held, so whoever wrote the journal is gone): after the switch the
// old volume is deleted, before it the unfinished copy. It reports what it did.
func (b *Builder) recoverReclaim(ctx context.Context) (string, error) {
	var j reclaimJournal
	ok, err := readJSON(b.journalPath(), 4096, &j,
		"remove it: the store is the volume "+b.recordPath()+" names (or the configured one), and the next `gc --compact` deletes a leftover copy")
	if err != nil || !ok {
		return "", err
	}
	if !b.ownVolume(j.From) || !b.ownVolume(j.To) || j.From == j.To {
		return "", problem.Newf(problem.Config, "remove it if no compaction runs: the store volume is named in "+b.recordPath(),
			"%s names volumes %q and %q, which are not the store's", b.journalPath(), j.From, j.To)
	}
	if ct, err := b.CLI.Get(ctx, ReclaimContainer); err != nil {
		return "", err
	} else if ct != nil && ct.Labels[LabelKey] != "" {
		if err := b.CLI.Stop(ctx, ReclaimContainer, 5*time.Second); err != nil {
			return "", err
		}
		if err := b.CLI.Delete(ctx, ReclaimContainer); err != nil {
			return "", err
		}
	}
	active, err := b.StoreVolume()
	if err != nil {
		return "", err
	}
	stale, did := j.To, "an interrupted compaction was undone: deleted the unfinished copy "+j.To+"; the store is still "+j.From
	if active == j.To {
		stale, did = j.From, "an interrupted compaction was finished: deleted the old store volume "+j.From
	}
	b.say("%s", did)
	if err := b.CLI.VolumeRemove(ctx, stale); err != nil {
		return "", err
	}
	return did, removeDurable(b.journalPath())
}

func newToken() (string, error) {
	var buf [16]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(buf[:]), nil
}

// plain keeps what the copy container printed to one short line of
// printable text: its output names files of the store, which the builder
// wrote (no escape sequences or bidi overrides reach the terminal).
func plain(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 200 {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			b.WriteRune('?')
		}
	}
	return b.String()
}
