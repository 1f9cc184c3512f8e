package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wrapix/wrapix-builder/builder/builds"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/shellquote"
)

func buildsCmd(e *env) *cobra.Command {
	var asJSON, follow bool
	var logOf string
	var limit int
	cmd := &cobra.Command{
		Use:   "builds",
		Short: "Show running and recent builds; --follow streams them, --log DRV prints one's log",
		Long: `Show the builds the builder is running and the recent finished ones (start, duration,
outcome, derivation). --follow keeps printing builds as they start and end; --log DRV
prints a build's log (DRV: a derivation path, or a name from the list).
--json prints the document described in docs/builds.md (with --follow: one build per line).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			c, err := b.Dial(ctx)
			if p := (*problem.Error)(nil); errors.As(err, &p) {
				return err // already says what to do (keys missing, host key mismatch)
			}
			if err != nil {
				return problem.Wrap(problem.KindOf(err), err, "cannot connect to the builder at "+b.SSHAddress(), "is it running? `wrapix-builder status`")
			}
			defer c.Close()
			h, offset, err := lifecycle.LoadBuilds(ctx, c, 0)
			if errors.Is(err, lifecycle.ErrNoBuildLog) {
				return problem.New(problem.Unhealthy, "the builder records no build activity: it runs an image from before this version", "restart it: `wrapix-builder stop && wrapix-builder start`")
			}
			if err != nil {
				return problem.Wrap(problem.Unhealthy, err, "cannot read the builder's build log", "`wrapix-builder doctor`")
			}
			if logOf != "" {
				drv := logOf
				if !builds.ValidDrv(drv) {
					found, ok := h.Find(logOf)
					if !ok {
						return problem.Newf(problem.Usage, "give a derivation path or a name from `wrapix-builder builds`", "no build %q in the builder's history", logOf)
					}
					drv = found.Drv
				}
				if !strings.HasPrefix(drv, "/nix/store/") {
					drv = "/nix/store/" + drv
				}
				out, closeOut := forTerminal(e.stdout)
				defer closeOut()
				errw, closeErr := forTerminal(e.stderr)
				defer closeErr()
				code, err := lifecycle.BuildLog(ctx, c, drv, out, errw)
				if err != nil {
					return problem.Wrap(problem.Unhealthy, err, "ssh session failed", "")
				}
				if code != 0 {
					return exitCode(code)
				}
				return nil
			}
			now := time.Now()
			if !follow {
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(h.Doc(now, limit))
				}
				printBuilds(e.stdout, h, now, limit)
				return nil
			}
			if !asJSON {
				printBuilds(e.stdout, h, now, limit)
			}
			err = lifecycle.FollowBuilds(ctx, c, offset, func(line string) {
				bd, changed := h.ApplyLine(line)
				if !changed {
					return
				}
				if asJSON {
					_ = json.NewEncoder(e.stdout).Encode(bd)
					return
				}
				fmt.Fprintln(e.stdout, buildLine(bd, time.Now()))
			})
			if ctx.Err() != nil {
				return nil // interrupted by the user
			}
			return problem.Wrap(problem.Unhealthy, err, "lost the builder while following its builds", "`wrapix-builder status`")
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema in docs/builds.md)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing builds as they start and end")
	cmd.Flags().StringVar(&logOf, "log", "", "print the log of this build (derivation path or name)")
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "how many finished builds to list")
	return cmd
}

// Mark is the one-character outcome shown in lists and the menu.
func mark(outcome string) string {
	switch outcome {
	case builds.Succeeded:
		return "✓"
	case builds.Failed:
		return "✗"
	case builds.Interrupted:
		return "!"
	}
	return "…"
}

func printBuilds(w io.Writer, h *builds.History, now time.Time, limit int) {
	running, finished := h.Running(now), h.Finished(limit)
	if len(running) == 0 && len(finished) == 0 {
		fmt.Fprintln(w, "no builds yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tNAME\tSTARTED\tDURATION\tOUTCOME\tDERIVATION")
	for _, b := range append(running, finished...) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark(b.Outcome), b.Name, b.Start.Local().Format("Jan 2 15:04:05"),
			builds.FormatDuration(b.Elapsed(now)), b.Outcome, b.Drv)
	}
	tw.Flush()
}

// buildLine is one --follow line.
func buildLine(b builds.Build, now time.Time) string {
	switch b.Outcome {
	case builds.Running:
		return fmt.Sprintf("%s started  %s  %s", b.Start.Local().Format("15:04:05"), b.Name, b.Drv)
	case builds.Failed:
		return fmt.Sprintf("%s %s failed after %s  %s  (log: wrapix-builder builds --log %s)", b.End.Local().Format("15:04:05"), mark(b.Outcome), builds.FormatDuration(b.Elapsed(now)), b.Name, shellquote.Quote(b.Drv))
	}
	return fmt.Sprintf("%s %s %s %s after %s  %s", b.End.Local().Format("15:04:05"), mark(b.Outcome), b.Name, b.Outcome, builds.FormatDuration(b.Elapsed(now)), b.Drv)
}
