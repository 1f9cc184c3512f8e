// Command mkimage writes the e2e stand-in's builder image (what `make demo`
// runs): image/layout.sh with Debian's packages in place of the aarch64
// ones, exactly as the end-to-end tests build it (testenv.BuildImage). It
// prints the image root's path.
//
//	go run ./internal/testenv/mkimage DIR
package main

import (
	"fmt"
	"os"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkimage DIR (an empty directory for the image and its scratch files)")
		os.Exit(2)
	}
	rootfs, err := testenv.BuildImage(os.Args[1], testenv.ImageOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Println(rootfs)
}
