package lifecycle

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/wrapix/wrapix-builder/builder/builds"
	"github.com/wrapix/wrapix-builder/builder/shellquote"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
)

// ErrNoBuildLog: the builder runs an image from before build activity
// (its entrypoint creates the log at every start); a restart with this
// version's image fixes it.
var ErrNoBuildLog = errors.New("the builder records no build activity (its image predates it): restart it with `wrapix-builder stop && wrapix-builder start`")

// LoadBuilds reads the builder's build event log once (docs/builds.md). It
// returns the history and the log's length, where FollowBuilds can go on.
func LoadBuilds(ctx context.Context, c *sshclient.Client, limit int) (*builds.History, int64, error) {
	var out, errb bytes.Buffer
	code, err := c.Run(ctx, "[ -e "+builds.LogPath+" ] || exit 3; cat "+builds.LogPath, nil, &out, &errb)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the build log: %w", err)
	}
	if code == 3 {
		return nil, 0, ErrNoBuildLog
	}
	if code != 0 {
		return nil, 0, fmt.Errorf("reading the build log: exit %d: %s", code, bytes.TrimSpace(errb.Bytes()))
	}
	n := int64(out.Len())
	h, err := builds.Read(&out, limit)
	return h, n, err
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
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line(sc.Text())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return fmt.Errorf("following the build log: %w", err)
	}
	return fmt.Errorf("following the build log: the builder closed the stream")
}

// BuildLog writes a build's log (`nix-store --read-log` on the builder) to w.
func BuildLog(ctx context.Context, c *sshclient.Client, drv string, w, errw io.Writer) (int, error) {
	return c.Run(ctx, "nix-store --read-log "+shellquote.Quote(drv), nil, w, errw)
}
