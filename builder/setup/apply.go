package setup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/wrapix/wrapix-builder/builder/atomicfile"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/toolpath"
)

// JournalPath records what setup changed, so --undo can reverse it exactly.
const JournalPath = "/etc/nix/wrapix_builder_setup.json"

// The markers around our block in a shared file. Nix splits a builders
// specification on ';' as well as on newlines before it strips '#' comments
// (src/libstore/machines.cc), so no marker may contain ';': the text after it
// would become a machine line.
const (
	blockBegin    = "# BEGIN wrapix-builder (managed by wrapix-builder setup, undo with: sudo wrapix-builder setup --undo)\n"
	blockEnd      = "# END wrapix-builder\n"
	beginPrefix   = "# BEGIN wrapix-builder"
	endLine       = "# END wrapix-builder"
	blockFixHints = "keep exactly one `# BEGIN wrapix-builder` line followed later by one `# END wrapix-builder` line around the lines setup wrote (or delete setup's lines and both markers), then re-run"
)

// journal is the on-disk record of the state before the first apply.
type journal struct {
	Version  int                      `json:"version"`
	Files    map[string]*originalFile `json:"files"`    // logical path → what was there before
	Dirs     []string                 `json:"dirs"`     // directories we created, parents first
	Commands [][]string               `json:"commands"` // undo commands of commands we ran, in order
}

type originalFile struct {
	Existed      bool        `json:"existed"`
	Mode         os.FileMode `json:"mode,omitempty"`
	Content      []byte      `json:"content,omitempty"` // whole files only: restored on undo
	Block        bool        `json:"block,omitempty"`   // shared file: undo removes our block
	AddedNewline bool        `json:"addedNewline,omitempty"`
}

// Runner runs a privileged command; tests pass one that records.
type Runner func(cmd []string) error

func loadJournal(e Env) (*journal, error) {
	data, err := os.ReadFile(e.abs(JournalPath))
	if errors.Is(err, fs.ErrNotExist) {
		return &journal{Version: 1, Files: map[string]*originalFile{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", e.abs(JournalPath), err)
	}
	if j.Files == nil {
		j.Files = map[string]*originalFile{}
	}
	if err := j.validate(); err != nil {
		return nil, problem.Newf(problem.Setup,
			"setup never writes that: restore "+strings.Join(slices.Sorted(maps.Keys(journalFiles)), ", ")+" by hand if needed and move the journal aside",
			"%s is not a journal setup wrote: %v", e.abs(JournalPath), err)
	}
	return &j, nil
}

// What a journal may name: the fixed files setup writes (whole or as a
// block), the directories above them, and the undo commands setup knows.
// The journal is root's file, but it is data, and data decides nothing: an
// entry outside this set (a path with "..", a setuid mode, a command of its
// own) is refused, never acted on.
var (
	journalFiles = map[string]bool{ // path → true: a marked block in a shared file
		nixconf.RootKeyPath: false, nixconf.KnownHostsPath: false, nixconf.SSHConfigPath: false,
		nixconf.MachinesPath: true, "/etc/nix/nix.conf": true, "/etc/nix/nix.custom.conf": true,
	}
	journalDirs  = []string{"/etc", "/etc/nix", "/etc/ssh", "/etc/ssh/ssh_config.d"}
	subnetRe     = regexp.MustCompile(`^(\d{1,3}\.){3}\d{1,3}/\d{1,2}$`)
	interfaceRe  = regexp.MustCompile(`^[a-z]{1,15}[0-9]{1,5}$`)
	maxSavedFile = 1 << 20
)

func knownUndoCommand(c []string) bool {
	for _, reload := range [][]string{
		{"/bin/launchctl", "kickstart", "-k", "system/org.nixos.nix-daemon"},
		{"/bin/launchctl", "kickstart", "-k", "system/systems.determinate.nix-daemon"},
		{"systemctl", "try-restart", "nix-daemon.service"}, // before issue 16's review: resolved again on undo (Undo)
	} {
		if slices.Equal(c, reload) {
			return true
		}
	}
	for _, dir := range toolpath.Systemctl.Places {
		if slices.Equal(c, []string{filepath.Join(dir, "systemctl"), "try-restart", "nix-daemon.service"}) {
			return true
		}
	}
	return len(c) == 7 && slices.Equal(c[:4], []string{"/sbin/route", "-n", "delete", "-net"}) && subnetRe.MatchString(c[4]) &&
		c[5] == "-interface" && interfaceRe.MatchString(c[6])
}

func (j *journal) validate() error {
	if j.Version != 1 {
		return fmt.Errorf("unknown version %d", j.Version)
	}
	for path, o := range j.Files {
		block, known := journalFiles[path]
		switch {
		case !known:
			return fmt.Errorf("it names the file %s", strconv.QuoteToASCII(path))
		case o == nil || o.Block != block:
			return fmt.Errorf("the entry for %s has the wrong kind", path)
		case o.Mode&^0o777 != 0:
			return fmt.Errorf("the entry for %s has mode %v (only permission bits, never setuid, setgid or sticky)", path, o.Mode)
		case len(o.Content) > maxSavedFile || block && len(o.Content) > 0:
			return fmt.Errorf("the entry for %s holds unexpected content", path)
		}
	}
	for _, d := range j.Dirs {
		if !slices.Contains(journalDirs, d) {
			return fmt.Errorf("it names the directory %s", strconv.QuoteToASCII(d))
		}
	}
	for _, c := range j.Commands {
		if !knownUndoCommand(c) {
			return fmt.Errorf("it names the command %s", strconv.QuoteToASCII(strings.Join(c, " ")))
		}
	}
	return nil
}

func (j *journal) save(e Env) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(e.abs(JournalPath), append(data, '\n'), 0o600)
}

// Apply carries out the plan. It is idempotent: applying the same plan again
// leaves every file byte for byte as it was.
func Apply(e Env, plan Plan, run Runner) error {
	j, err := loadJournal(e)
	if err != nil {
		return problem.Wrap(problem.Setup, err, "cannot read the setup journal", "move it aside only if you know what setup changed")
	}
	// The journal lives in /etc/nix; make sure that exists first (and is undone).
	if err := j.mkdirs(e, filepath.Dir(JournalPath)); err != nil {
		return err
	}
	if err := j.save(e); err != nil {
		return problem.Wrap(problem.Setup, err, "cannot write "+e.abs(JournalPath), "run setup as root (sudo)")
	}
	for _, op := range plan.Ops {
		if err := j.apply(e, op, run); err != nil {
			_ = j.save(e) // keep what was done so far undoable
			return err
		}
		if err := j.save(e); err != nil {
			return problem.Wrap(problem.Setup, err, "cannot write "+e.abs(JournalPath), "")
		}
	}
	return nil
}

func (j *journal) mkdirs(e Env, dir string) error {
	var missing []string
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Lstat(e.abs(d)); err == nil {
			break
		}
		missing = append([]string{d}, missing...)
	}
	for _, d := range missing {
		if err := os.Mkdir(e.abs(d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return problem.Wrap(problem.Setup, err, "cannot create "+e.abs(d), "run setup as root (sudo)")
		}
		// Mkdir's mode passes through the umask: under umask 077 other users
		// (and their Nix and ssh) could not read what we put inside.
		if err := os.Chmod(e.abs(d), 0o755); err != nil {
			return problem.Wrap(problem.Setup, err, "cannot make "+e.abs(d)+" readable (0755)", "run setup as root (sudo)")
		}
		if !slices.Contains(j.Dirs, d) {
			j.Dirs = append(j.Dirs, d)
		}
	}
	return nil
}

// remember records the state of path before our first change to it.
func (j *journal) remember(e Env, path string, block bool) (*originalFile, error) {
	if o, ok := j.Files[path]; ok {
		return o, nil
	}
	o := &originalFile{Block: block}
	fi, err := os.Lstat(e.abs(path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	case fi.Mode()&os.ModeSymlink != 0:
		return nil, fmt.Errorf("%s is a symlink; refusing to write through it", e.abs(path))
	default:
		o.Existed, o.Mode = true, fi.Mode().Perm()
		if !block {
			if o.Content, err = os.ReadFile(e.abs(path)); err != nil {
				return nil, err
			}
		}
	}
	j.Files[path] = o
	return o, nil
}

func (j *journal) apply(e Env, op Op, run Runner) error {
	fail := func(err error) error {
		return problem.Wrap(problem.Setup, err, "setup could not "+op.Kind+" "+op.Path, "run it as root (sudo); `wrapix-builder setup --undo` reverses what was done")
	}
	switch op.Kind {
	case OpWriteFile:
		if err := j.mkdirs(e, filepath.Dir(op.Path)); err != nil {
			return err
		}
		if _, err := j.remember(e, op.Path, false); err != nil {
			return fail(err)
		}
		if err := j.save(e); err != nil { // the original is on record before it is replaced
			return fail(err)
		}
		if _, err := atomicfile.WriteIfChanged(e.abs(op.Path), op.Content, op.Mode); err != nil {
			return fail(err)
		}
	case OpBlock:
		if err := j.mkdirs(e, filepath.Dir(op.Path)); err != nil {
			return err
		}
		o, err := j.remember(e, op.Path, true)
		if err != nil {
			return fail(err)
		}
		if err := j.save(e); err != nil {
			return fail(err)
		}
		old, err := os.ReadFile(e.abs(op.Path))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
		updated, addedNewline, err := withBlock(e.abs(op.Path), old, op.Content)
		if err != nil {
			return err
		}
		if addedNewline {
			o.AddedNewline = true
		}
		mode := op.Mode
		if o.Existed {
			mode = o.Mode
		}
		if _, err := atomicfile.WriteIfChanged(e.abs(op.Path), updated, mode); err != nil {
			return fail(err)
		}
	case OpRun:
		if err := run(op.Cmd); err != nil {
			return problem.Wrap(problem.Setup, err, "`"+strings.Join(op.Cmd, " ")+"` failed", "run it by hand to see why, then re-run setup")
		}
		if op.UndoCmd != nil && !containsCmd(j.Commands, op.UndoCmd) {
			j.Commands = append(j.Commands, op.UndoCmd)
		}
	}
	return nil
}

func containsCmd(list [][]string, c []string) bool {
	return slices.ContainsFunc(list, func(x []string) bool { return slices.Equal(x, c) })
}

// withBlock returns content with our block set to body: replaced in place when
// present, else appended (after a newline if the file lacked a final one). A
// damaged block is an error: guessing where it ends could delete lines the
// administrator wrote.
func withBlock(path string, content, body []byte) ([]byte, bool, error) {
	block := append(append([]byte(blockBegin), body...), blockEnd...)
	start, end, ok, err := findBlock(path, content)
	if err != nil {
		return nil, false, err
	}
	if ok {
		return slices.Concat(content[:start], block, content[end:]), false, nil
	}
	addedNewline := len(content) > 0 && content[len(content)-1] != '\n'
	out := slices.Clone(content)
	if addedNewline {
		out = append(out, '\n')
	}
	return append(out, block...), addedNewline, nil
}

// findBlock finds our block: exactly one BEGIN line (this version's or an
// earlier one's) followed by exactly one END line, or neither. Anything else
// is damage that only a person can resolve.
func findBlock(path string, content []byte) (start, end int, ok bool, err error) {
	var begins, ends []int // byte offsets of marker lines
	var beginLines, endLines []int
	off := 0
	for i, line := range strings.SplitAfter(string(content), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, beginPrefix):
			begins, beginLines = append(begins, off), append(beginLines, i+1)
		case trimmed == endLine:
			ends, endLines = append(ends, off+len(line)), append(endLines, i+1)
		}
		off += len(line)
	}
	damaged := func(what string) error {
		return problem.Newf(problem.Setup, blockFixHints, "%s has a damaged wrapix-builder block (%s); setup changes nothing in it", path, what)
	}
	switch {
	case len(begins) == 0 && len(ends) == 0:
		return 0, 0, false, nil
	case len(begins) > 1:
		return 0, 0, false, damaged(fmt.Sprintf("%d BEGIN lines, at lines %v", len(begins), beginLines))
	case len(ends) > 1:
		return 0, 0, false, damaged(fmt.Sprintf("%d END lines, at lines %v", len(ends), endLines))
	case len(ends) == 0:
		return 0, 0, false, damaged(fmt.Sprintf("BEGIN at line %d has no END line", beginLines[0]))
	case len(begins) == 0:
		return 0, 0, false, damaged(fmt.Sprintf("END at line %d has no BEGIN line", endLines[0]))
	case ends[0] < begins[0]:
		return 0, 0, false, damaged(fmt.Sprintf("END at line %d comes before BEGIN at line %d", endLines[0], beginLines[0]))
	}
	return begins[0], ends[0], true, nil
}

// Undo reverses everything the journal records, then removes the journal.
func Undo(e Env, run Runner) error {
	if _, err := os.Lstat(e.abs(JournalPath)); errors.Is(err, fs.ErrNotExist) {
		return nil // nothing was set up: undo is a no-op
	}
	j, err := loadJournal(e)
	if err != nil {
		return problem.Wrap(problem.Setup, err, "cannot read the setup journal", "restore the files listed by `wrapix-builder setup --dry-run` by hand")
	}
	paths := make([]string, 0, len(j.Files))
	for p := range j.Files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if err := undoFile(e, p, j.Files[p]); err != nil {
			var perr *problem.Error
			if errors.As(err, &perr) {
				return err
			}
			return problem.Wrap(problem.Setup, err, "cannot restore "+e.abs(p), "run undo as root (sudo)")
		}
	}
	for i := len(j.Commands) - 1; i >= 0; i-- {
		if j.Commands[i][0] == "systemctl" {
			// An older setup's bare name: never looked up on the caller's
			// $PATH, but replaced by root's own systemctl (or skipped).
			if e.Systemctl == "" {
				continue
			}
			j.Commands[i] = append([]string{e.Systemctl}, j.Commands[i][1:]...)
		}
		if err := run(j.Commands[i]); err != nil {
			return problem.Wrap(problem.Setup, err, "`"+strings.Join(j.Commands[i], " ")+"` failed", "run it by hand")
		}
	}
	if err := os.Remove(e.abs(JournalPath)); err != nil {
		return problem.Wrap(problem.Setup, err, "cannot remove "+e.abs(JournalPath), "")
	}
	for i := len(j.Dirs) - 1; i >= 0; i-- {
		_ = os.Remove(e.abs(j.Dirs[i])) // only succeeds when empty: never removes others' files
	}
	return nil
}

func undoFile(e Env, path string, o *originalFile) error {
	abs := e.abs(path)
	if fi, err := os.Lstat(abs); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil // replaced by a link since (e.g. nix-darwin took it over): not ours any more
	}
	if o.Block {
		content, err := os.ReadFile(abs)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		start, end, ok, err := findBlock(abs, content)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		out := slices.Concat(content[:start], content[end:])
		if o.AddedNewline && start == len(out) && len(out) > 0 && out[len(out)-1] == '\n' {
			out = out[:len(out)-1]
		}
		if !o.Existed && len(out) == 0 {
			return os.Remove(abs)
		}
		mode := o.Mode
		if !o.Existed {
			mode = filePerm(abs)
		}
		return atomicfile.Write(abs, out, mode)
	}
	if !o.Existed {
		err := os.Remove(abs)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return atomicfile.Write(abs, o.Content, o.Mode)
}

func filePerm(path string) os.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return 0o644
}
