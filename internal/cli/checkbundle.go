package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wrapix/wrapix-builder/builder/codesig"
	"github.com/wrapix/wrapix-builder/builder/problem"
)

// checkBundleCmd checks that an app bundle is signed as a bundle (its
// identifier, its Info.plist bound): the flake's build and make-app.sh run
// it after signing, so a bundle macOS would silently deny notifications is
// never produced (issue 17 point 5).
func checkBundleCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "check-bundle APP",
		Short:  "Check that an app bundle is signed as a bundle (for the build)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := codesig.CheckBundle(args[0]); err != nil {
				return problem.Wrap(problem.Internal, err, "cannot use "+args[0],
					"sign the whole bundle: `codesign --force --sign - --identifier org.wrapix.builder APP` on a Mac, or `rcodesign sign APP`")
			}
			fmt.Fprintf(e.stdout, "%s: signed as a bundle, Info.plist bound\n", args[0])
			return nil
		},
	}
}

// prepareCmd makes the keys and the image ready without starting the
// builder (lifecycle.Prepare): setup run as yourself does it before sudo,
// so that a build's on-demand start, which never builds the image, finds
// it (issue 17 point 4).
func prepareCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "prepare",
		Short:  "Make the keys and the builder image ready without starting the builder",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			if err := b.Prepare(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "prepared: the keys and the image "+b.Config.Image+" are ready")
			return nil
		},
	}
}
