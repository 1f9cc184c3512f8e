package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/doctor"
	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/problem"
)

var formats = map[string]func(nixconf.Params) string{
	"nix-darwin":  nixconf.NixDarwin,
	"machines":    nixconf.MachinesLine,
	"nix.conf":    nixconf.NixConf,
	"determinate": nixconf.Determinate,
	"ssh-config":  nixconf.SSHConfig,
	"known-hosts": nixconf.KnownHosts,
}

func formatNames() []string {
	names := make([]string, 0, len(formats))
	for k := range formats {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func configCmd(e *env) *cobra.Command {
	var format, uri string
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print Nix configuration for the builder (nix-darwin snippet by default)",
		Long: `Print configuration with the builder's real host key filled in. Formats:
  nix-darwin   a module snippet for a permanent nix-darwin setup (default)
  machines     one /etc/nix/machines line
  nix.conf     builders and builders-use-substitutes lines
  determinate  the same for Determinate Nix's /etc/nix/nix.custom.conf
  ssh-config   the /etc/ssh/ssh_config.d drop-in
  known-hosts  the known-hosts file with the pinned host key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			render, ok := formats[format]
			if !ok {
				return problem.Newf(problem.Usage, "use one of: "+strings.Join(formatNames(), ", "), "unknown --format %q", format)
			}
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			ks, err := keys.Load(b.Layout)
			if err != nil {
				return err
			}
			form, err := uriForm(cmd.Context(), uri)
			if err != nil {
				return err
			}
			p := b.Params(ks, form)
			if err := p.Validate(); err != nil {
				return problem.Wrap(problem.Config, err, "refusing to print the configuration", "fix the value in config.toml or the key files")
			}
			fmt.Fprint(e.stdout, render(p))
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "nix-darwin", "one of: "+strings.Join(formatNames(), ", "))
	cmd.Flags().StringVar(&uri, "uri", nixconf.FormAlias, "builders URI form: alias (every Nix) or port (Nix ≥ 2.31.3)")
	_ = cmd.RegisterFlagCompletionFunc("format", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return formatNames(), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func doctorCmd(e *env) *cobra.Command {
	var asJSON bool
	var root string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check every link from your Nix to the builder, with a fix for each failure",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(false)
			if err != nil {
				return err
			}
			checks := doctor.Run(cmd.Context(), b, e.cfgErr, doctor.Options{Root: root})
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"schema": 1, "checks": checks}); err != nil {
					return err
				}
			} else {
				fmt.Fprint(e.stdout, doctor.Text(checks))
			}
			if c, failed := doctor.Failed(checks); failed {
				code := problem.ExitCodeOf(c.Kind)
				if c.Kind == problem.Internal {
					code = 1
				}
				return exitCode(code)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checks as JSON")
	cmd.Flags().StringVar(&root, "root", "/", "read the Mac's /etc under this directory")
	_ = cmd.Flags().MarkHidden("root")
	return cmd
}

func keysCmd(e *env) *cobra.Command {
	keysRoot := &cobra.Command{Use: "keys", Short: "Show or rotate the builder's SSH keys"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the key fingerprints and paths",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(false)
			if err != nil {
				return err
			}
			ks, err := keys.Load(b.Layout)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "host   %s  %s\nclient %s  %s\n", ks.Host.Fingerprint(), ks.Host.PublicPath, ks.Client.Fingerprint(), ks.Client.PublicPath)
			return nil
		},
	}
	var host, client bool
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the keys deliberately (old ones are kept in builder-keys/old/)",
		Long: `Replace the host key, the client key, or both (the default). The builder must be stopped.
The old files are moved to builder-keys/old/<time>/, never deleted. Afterwards run
` + "`sudo wrapix-builder setup`" + ` (or update your nix-darwin config) so root trusts the new keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(false)
			if err != nil {
				return err
			}
			which := keys.Which{Host: host, Client: client}
			if !host && !client {
				which = keys.Which{Host: true, Client: true}
			}
			backup, err := b.RotateKeys(cmd.Context(), which, time.Now())
			if err != nil {
				return err
			}
			if backup != "" {
				fmt.Fprintf(e.stdout, "old keys moved to %s\n", backup)
			}
			fmt.Fprintln(e.stdout, "new keys created; now run `sudo wrapix-builder setup` (or update your nix-darwin config from `wrapix-builder config`)")
			return nil
		},
	}
	rotate.Flags().BoolVar(&host, "host", false, "rotate the host key")
	rotate.Flags().BoolVar(&client, "client", false, "rotate the client key")
	keysRoot.AddCommand(show, rotate, rootCopyCmd(e))
	return keysRoot
}

func gcCmd(e *env) *cobra.Command {
	var capFlag string
	var compact bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect garbage on the builder until its store is under store-size-cap",
		Long: `Measure the builder's store and, when it is over store-size-cap (config.toml, default 100GiB)
or --cap, collect garbage there until it is under. The builder's own tools are GC roots and stay.

With --compact, then give the freed space back to macOS: the store volume only grows on the Mac
(nothing trims it), so the live store is copied into a fresh volume, verified, and the old volume
deleted. The builder is stopped meanwhile and started again if it was running. Interrupted at any
point, the old volume stays the store; the next start or --compact finishes or undoes the move.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			limit := b.Config.StoreSizeCap
			if capFlag != "" {
				if limit, err = config.ParseSize(capFlag); err != nil {
					return problem.Wrap(problem.Usage, err, "bad --cap", `use a size with a unit, e.g. --cap 50GiB`)
				}
				if limit > config.VolumeSize {
					return problem.Newf(problem.Usage, `use at most --cap 512GiB`, "--cap %s is more than the store volume holds (512 GiB)", capFlag)
				}
			}
			if compact {
				return runCompact(cmd, e, b, limit)
			}
			res, err := b.GC(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if !res.Collected {
				fmt.Fprintf(e.stdout, "store is %s, under its cap of %s: nothing to do\n", config.HumanSize(res.Before), config.HumanSize(res.Cap))
				return nil
			}
			fmt.Fprintf(e.stdout, "store went from %s to %s (cap %s)\n", config.HumanSize(res.Before), config.HumanSize(res.After), config.HumanSize(res.Cap))
			return nil
		},
	}
	cmd.Flags().StringVar(&capFlag, "cap", "", "size to bring the store under (default: store-size-cap)")
	cmd.Flags().BoolVar(&compact, "compact", false, "then give the freed space back to macOS: move the store into a fresh volume and delete the old one")
	return cmd
}

func resetStoreCmd(e *env) *cobra.Command {
	var yes, keepHostKey bool
	cmd := &cobra.Command{
		Use:   "reset-store --yes",
		Short: "Recreate the builder's store from nothing (after a suspected compromise)",
		Long: `Stop and delete the builder container, delete its store (the store volume, or builder-nix/
with store = "directory") and rotate the host key (the builder's sshd could read it; the old one
is kept in builder-keys/old/). The client key never entered the builder and stays. The next
start initialises a fresh store from the image; every cached build output is gone.
Afterwards run ` + "`sudo wrapix-builder setup`" + ` (or update your nix-darwin config) so root trusts
the new host key. --keep-host-key keeps it (then setup needs no rerun).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return problem.New(problem.Usage, "reset-store deletes the builder's whole store (every cached build)", "run `wrapix-builder reset-store --yes` to go ahead")
			}
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			res, err := b.ResetStore(cmd.Context(), keepHostKey, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "store deleted (%s); the next `wrapix-builder start` makes a fresh one\n", strings.Join(res.Removed, ", "))
			if res.KeyBackup != "" {
				fmt.Fprintf(e.stdout, "new host key; the old one is in %s. Now run `sudo wrapix-builder setup` (or update your nix-darwin config from `wrapix-builder config`)\n", res.KeyBackup)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "really delete the store")
	cmd.Flags().BoolVar(&keepHostKey, "keep-host-key", false, "keep the host key (by default it is rotated)")
	return cmd
}

// runCompact is `gc --compact` (docs/reclaim.md).
func runCompact(cmd *cobra.Command, e *env, b *lifecycle.Builder, limit int64) error {
	res, err := b.Reclaim(cmd.Context(), limit)
	if err != nil {
		return err
	}
	if res.GC.Collected {
		fmt.Fprintf(e.stdout, "garbage: store went from %s to %s (cap %s)\n", config.HumanSize(res.GC.Before), config.HumanSize(res.GC.After), config.HumanSize(res.GC.Cap))
	}
	fmt.Fprintf(e.stdout, "disk taken on the Mac: %s before, %s after (store in use: %s); store volume %s → %s, %s\n",
		humanOrUnknown(res.Before.DiskBytes), humanOrUnknown(res.After.DiskBytes), humanOrUnknown(res.Before.UsedBytes),
		res.From, res.To, res.Elapsed.Round(time.Second))
	return nil
}

func humanOrUnknown(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return config.HumanSize(n)
}
