// Command wrapix-builder is the headless CLI of Wrapix Builder.
package main

import (
	"os"

	"github.com/wrapix/wrapix-builder/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
