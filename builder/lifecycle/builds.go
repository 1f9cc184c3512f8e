package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/wrapix/wrapix-builder/builder/builds"
	"github.com/wrapix/wrapix-builder/builder/shellquote"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// ErrNoBuildLog: the builder runs an image from before build activity
// (its entrypoint creates the log at every start); a restart with this
// version's image fixes it.
var ErrNoBuildLog = errors.New("the builder records no build activity (its image predates it): restart it with `wrapix-builder stop && wrapix-builder start`")

// TailBytes is how much of the event log LoadBuilds reads: its end, where
// the running and recent builds are. The entrypoint keeps the last 2000
// lines (a few hundred KiB); a log that a compromised builder has grown
// beyond that costs the Mac no more than this.
const TailBytes = 1 << 20

// loadCmd prints the log's size on a first line, then its last TailBytes
// bytes and the one before them (whether that ends a line tells if the
// first line is whole). `tail -c +N` and `head -c` are in busybox and GNU.
var loadCmd = "f=" + shellquote.Quote(builds.LogPath) + `; [ -e "$f" ] || exit 3
s=$(wc -c < "$f") || exit 4
o=0; [ "$s" -gt ` + strconv.Itoa(TailBytes+1) + ` ] && o=$((s - ` + strconv.Itoa(TailBytes+1) + `))
echo "$s $o"
tail -c +$((o + 1)) "$f" | head -c $((s - o))`

// LoadBuilds reads the end of the builder's build event log
// (docs/builds.md). It returns the history and the log's length, where
// FollowBuilds can go on. It holds at most TailBytes of what the builder
// sends, whatever that is.
func LoadBuilds(ctx context.Context, c *sshclient.Client, limit int) (*builds.History, int64, error) {
	out := &sshclient.LimitedBuffer{Max: 64 + TailBytes + 1}
	errb := &sshclient.LimitedBuffer{Max: 4 << 10, Truncate: true}
	code, err := c.Run(ctx, loadCmd, nil, out, errb)
	if out.Over {
		return nil, 0, fmt.Errorf("reading the build log: the builder sent more than the %d bytes asked for", TailBytes+1)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading the build log: %w", err)
	}
	if code == 3 {
		return nil, 0, ErrNoBuildLog
	}
	if code != 0 {
		return nil, 0, fmt.Errorf("reading the build log: exit %d: %s", code, errb.Line())
	}
	header, data, _ := bytes.Cut(out.Bytes(), []byte("\n"))
	var size, from int64
	if n, _ := fmt.Sscanf(string(header), "%d %d", &size, &from); n != 2 || size < 0 || from < 0 || from > size || int64(len(data)) > size-from {
		return nil, 0, fmt.Errorf("reading the build log: unexpected answer %q", textclean.Line(string(header), 80))
	}
	if from > 0 {
		// The byte before the window: drop the rest of its line (a part).
		_, data, _ = bytes.Cut(data, []byte("\n"))
	}
	h, err := builds.Read(bytes.NewReader(data), limit)
	return h, size, err
}

// followCmd streams the log from byte offset on, by name across rotations.
// The session's stdin stays open: its end (the session closed, the
// connection lost) ends the remote tail, so none is left behind.
func followCmd(offset int64) string {
	return sshclient.ObserverMark + "tail -c +" + strconv.FormatInt(offset+1, 10) + " -F " + shellquote.Quote(builds.LogPath) +
		" 2>/dev/null & t=$!; cat >/dev/null; kill $t 2>/dev/null"
}

// FollowBuilds calls line for each new line of the log, from offset on,
// until ctx ends or the connection breaks. It spawns nothing on the Mac.
func FollowBuilds(ctx context.Context, c *sshclient.Client, offset int64, line func(string)) error {
	sess, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("open ssh session: %w", err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return err
	}
	defer stdin.Close()
	out, err := sess.StdoutPipe()
	if err != nil {
		return err
	}
	if err := sess.Start(followCmd(offset)); err != nil {
		return fmt.Errorf("following the build log: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { stdin.Close(); sess.Close() })
	defer stop()
	// Lines beyond builds.MaxLine are skipped as they stream, never held.
	err = builds.ScanLines(out, line)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("following the build log: %w", err)
	}
	return fmt.Errorf("following the build log: the builder closed the stream")
}

// BuildLog writes a build's log (`nix-store --read-log` on the builder) to w.
func BuildLog(ctx context.Context, c *sshclient.Client, drv string, w, errw io.Writer) (int, error) {
	return c.Run(ctx, "nix-store --read-log "+shellquote.Quote(drv), nil, w, errw)
}
