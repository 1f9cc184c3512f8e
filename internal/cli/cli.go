// Package cli is the `wrapix-builder` command line: flag parsing and output
// only. Every decision lives in the builder/ packages, which the app uses too.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/textclean"
	"github.com/wrapix/wrapix-builder/builder/version"
)

// env is what every command needs: resolved paths, the config and the builder.
type env struct {
	dataDir, configDir, containerCLI string
	runtimeTimeout                   time.Duration
	stdin                            *os.File
	stdout, stderr                   io.Writer

	layout paths.Layout
	cfg    config.Config
	cfgErr error
	// configOwner: root reads config.toml as this user's file
	// (config.LoadOwned; -1 = any owner); nil: an ordinary read.
	configOwner *int
}

// builder loads the layout and config. With strict, a bad config is an error.
func (e *env) builder(strict bool) (*lifecycle.Builder, error) {
	if err := e.resolveLayout(); err != nil {
		return nil, err
	}
	if e.configOwner != nil {
		e.cfg, e.cfgErr = config.LoadOwned(e.layout.ConfigFile(), *e.configOwner)
	} else {
		e.cfg, e.cfgErr = config.Load(e.layout.ConfigFile())
	}
	if e.cfgErr != nil && strict {
		return nil, e.cfgErr
	}
	b := lifecycle.New(e.layout, e.cfg, e.containerCLI)
	b.CLI.Timeout = e.runtimeTimeout
	b.Progress = func(msg string) { fmt.Fprintln(e.stderr, msg) }
	return b, nil
}

// resolveLayout finds the data and config directories (flags, then the environment).
func (e *env) resolveLayout() error {
	l, err := paths.FromEnv()
	if err != nil && (e.dataDir == "" || e.configDir == "") {
		return problem.Wrap(problem.Config, err, "cannot locate wrapix's directories", "set $HOME")
	}
	e.layout = l.Override(e.dataDir, e.configDir)
	return nil
}

// Main runs the CLI with args and returns the exit code.
func Main(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ex exitCode
	if errors.As(err, &ex) {
		return int(ex)
	}
	var p *problem.Error
	if errors.As(err, &p) {
		fmt.Fprintln(stderr, "wrapix-builder: "+oneLine(err.Error()))
		return problem.ExitCode(err)
	}
	// Only cobra's own errors (unknown command or flag, wrong arguments) get here.
	fmt.Fprintln(stderr, "wrapix-builder: "+oneLine(err.Error())+" (see `wrapix-builder --help`)")
	return problem.ExitCodeOf(problem.Usage)
}

// wrapErrors makes every error a command returns a problem, so that Main can
// tell them from cobra's usage errors.
func wrapErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			var ex exitCode
			var p *problem.Error
			if err == nil || errors.As(err, &ex) || errors.As(err, &p) {
				return err
			}
			return problem.Wrap(problem.Internal, err, "`"+cmd.CommandPath()+"` failed", "")
		}
	}
	for _, sub := range c.Commands() {
		wrapErrors(sub)
	}
}

// exitCode ends the command with a code and no further message (the command printed its own output).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// oneLine makes an error one line of plain text: a path or value named in it
// may hold control characters (an escape sequence must not reach the terminal).
func oneLine(s string) string {
	var b strings.Builder
	for _, r := range strings.Join(strings.Fields(s), " ") {
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "\\x%02x", r)
		}
	}
	return b.String()
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "wrapix-builder",
		Short: "An aarch64-linux Nix remote builder for your Mac, in an Apple container",
		Long: `wrapix-builder runs an aarch64-linux Nix builder (sshd + nix-daemon) in a container
through Apple's container CLI, keeps its /nix across restarts, and wires your Mac's
Nix to it over ssh-ng.

Typical first use:
  wrapix-builder start          # create keys and the store, run the builder
  sudo wrapix-builder setup     # let root's nix-daemon use it
  wrapix-builder doctor         # check every link of the chain`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return rootForCaller(cmd)
		},
	}
	root.SetVersionTemplate("wrapix-builder {{.Version}}\n")
	root.PersistentFlags().StringVar(&e.dataDir, "data-dir", "", "data directory (default $XDG_DATA_HOME/wrapix)")
	root.PersistentFlags().StringVar(&e.configDir, "config-dir", "", "config directory (default $XDG_CONFIG_HOME/wrapix)")
	root.PersistentFlags().StringVar(&e.containerCLI, "container-cli", lifecycle.DefaultContainerCLI, "Apple's container CLI to drive")
	_ = root.PersistentFlags().MarkHidden("container-cli")
	root.PersistentFlags().DurationVar(&e.runtimeTimeout, "runtime-timeout", 0, "deadline for each container CLI call (default 30s)")
	_ = root.PersistentFlags().MarkHidden("runtime-timeout")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return problem.Wrap(problem.Usage, err, "bad usage of `"+c.CommandPath()+"`", "see `"+c.CommandPath()+" --help`")
	})
	root.AddCommand(startCmd(e), stopCmd(e), serveCmd(e), statusCmd(e), sshCmd(e), setupCmd(e), configCmd(e), doctorCmd(e), logsCmd(e), keysCmd(e), gcCmd(e), resetStoreCmd(e), buildsCmd(e), checkBundleCmd(e), prepareCmd(e))
	wrapErrors(root)
	return root
}

func startCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Start the builder and wait until it is ready",
		Long: `Start the builder: start Apple's container system if needed, create the SSH keys and the
store on first use, run the container, and wait until SSH answers with the pinned host
key and nix-daemon responds. Starting a running builder does nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			already, err := b.Start(cmd.Context())
			if err != nil {
				return err
			}
			if already {
				fmt.Fprintf(e.stdout, "wrapix-builder is already running at %s\n", b.SSHAddress())
			} else {
				fmt.Fprintf(e.stdout, "wrapix-builder is ready at %s\n", b.SSHAddress())
			}
			return nil
		},
	}
}

func stopCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the builder (its store and keys stay)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(false)
			if err != nil {
				return err
			}
			was, err := b.Stop(cmd.Context())
			if err != nil {
				return err
			}
			if was {
				fmt.Fprintln(e.stdout, "wrapix-builder stopped")
			} else {
				fmt.Fprintln(e.stdout, "wrapix-builder is not running")
			}
			return nil
		},
	}
}

func statusCmd(e *env) *cobra.Command {
	var asJSON bool
	var root string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the builder's state on one screen",
		Long: `Show the builder's state: container, SSH, nix-daemon, store, setup and versions.
--json prints the versioned document described in docs/status.md.
Exit codes: 0 ready, 6 stopped, 7 starting or unhealthy, 4 container runtime unavailable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			r := b.Status(cmd.Context(), lifecycle.StatusOptions{Root: root, Builds: asJSON})
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				fmt.Fprint(e.stdout, r.Text())
			}
			if code := r.ExitCode(); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema in docs/status.md)")
	cmd.Flags().StringVar(&root, "root", "/", "read the Mac's /etc under this directory")
	_ = cmd.Flags().MarkHidden("root")
	return cmd
}

func sshCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "ssh [command…]",
		Short: "Open a shell on the builder, or run a command there",
		Long: `Connect to the builder as "builder" with the pinned host key. Without a command you get an
interactive shell (a PTY that follows your window size); with one, its output and exit
code are passed through. Arguments are joined with spaces, as OpenSSH does.`,
		DisableFlagParsing: false,
		Args:               cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			c, err := b.Dial(cmd.Context())
			if err != nil {
				return problem.Wrap(problem.KindOf(err), err, "cannot connect to the builder at "+b.SSHAddress(), "is it running? `wrapix-builder status`")
			}
			defer c.Close()
			remote := strings.Join(args, " ")
			var code int
			if remote == "" {
				if !isTerminal(e.stdin) {
					return problem.New(problem.Usage, "`wrapix-builder ssh` without a command needs a terminal", "give a command, e.g. `wrapix-builder ssh nix-store --version`")
				}
				code, err = c.Interactive(cmd.Context(), "", e.stdin, e.stdout, e.stderr)
			} else {
				var in io.Reader // a nil *os.File must not become a non-nil reader
				if e.stdin != nil {
					in = e.stdin
				}
				code, err = c.Run(cmd.Context(), remote, in, e.stdout, e.stderr)
			}
			if err != nil {
				return problem.Wrap(problem.Unhealthy, err, "ssh session failed", "")
			}
			if code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
}

func logsCmd(e *env) *cobra.Command {
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Print the builder's logs (container logs); -f to follow",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(false)
			if err != nil {
				return err
			}
			out, closeOut := forTerminal(e.stdout)
			defer closeOut()
			errw, closeErr := forTerminal(e.stderr)
			defer closeErr()
			err = b.CLI.Logs(cmd.Context(), lifecycle.ContainerName, follow, tail, out, errw)
			if err != nil && strings.Contains(err.Error(), "not found") {
				return problem.Wrap(problem.NotRunning, err, "there is no builder container to show logs of", "wrapix-builder start")
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().IntVarP(&tail, "tail", "n", 0, "only the last N lines")
	return cmd
}

// forTerminal is w for the builder's own bytes (its logs, a build's log):
// on a terminal without escape sequences and control characters but
// newline and tab (textclean.Terminal), so a compromised builder cannot set
// the clipboard or rewrite the screen; into a pipe or file unchanged, byte
// for byte, as users save logs (issue 16).
func forTerminal(w io.Writer) (io.Writer, func()) {
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		t := textclean.Terminal(w)
		return t, func() { t.Close() }
	}
	return w, func() {}
}

func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
