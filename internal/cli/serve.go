package cli

import (
	"fmt"
	"log"
	"time"

	"github.com/spf13/cobra"

	"github.com/wrapix/wrapix-builder/builder/waker"
)

func serveCmd(e *env) *cobra.Command {
	var retryBase, retryMax, helloTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Wake the builder when Nix connects, stop it when idle (runs as a login agent)",
		Long: `Listen on 127.0.0.1:<port>, the address Nix and ssh use for the builder. A connection
that finds the builder stopped starts it (once, however many arrive), then is carried
through to the builder's sshd on 127.0.0.1:<container-port>. After idle-stop with no
connection and nothing at work on the builder, stop it. Runs until interrupted; on macOS
setup installs it as a LaunchAgent. See docs/on-demand.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			b.Progress = nil  // a start's steps are not for Nix's connection; the waker logs the outcome
			b.OnDemand = true // never an image build inside a wake
			ln, err := waker.Listen(b.Config.Port)
			if err != nil {
				return err
			}
			logger := log.New(e.stderr, "wrapix-builder serve: ", log.LstdFlags)
			idle := "never"
			if b.Config.IdleStop > 0 {
				idle = "after " + b.Config.IdleStop.String() + " idle"
			}
			logger.Printf("listening on %s for %s; stops the builder %s", b.NixAddress(), b.SSHAddress(), idle)
			w := &waker.Waker{Builder: b, Target: b.SSHAddress(), IdleStop: b.Config.IdleStop,
				DataDir: b.Layout.DataDir, LockFile: b.Layout.LockFile(), Log: logger,
				RetryBase: retryBase, RetryMax: retryMax, HelloTimeout: helloTimeout}
			if err := w.Serve(cmd.Context(), ln); err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		},
	}
	// Tests shorten or lengthen these bounds (docs/local-port.md); users have no need to.
	cmd.Flags().DurationVar(&retryBase, "retry-base", 0, "first wait after a failed start (default 1s)")
	cmd.Flags().DurationVar(&retryMax, "retry-max", 0, "longest wait after failed starts (default 1m)")
	cmd.Flags().DurationVar(&helloTimeout, "hello-timeout", 0, "how long a connection may stay silent (default 10s)")
	for _, f := range []string{"retry-base", "retry-max", "hello-timeout"} {
		_ = cmd.Flags().MarkHidden(f)
	}
	return cmd
}
