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
