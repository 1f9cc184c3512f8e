// Command darwincheck type-checks packages for darwin/arm64 with cgo on,
// from Linux, without an Apple SDK or a C compiler: `go list` resolves the
// darwin+cgo file set, and go/types checks it with FakeImportC (`import "C"`
// becomes an empty package; only references into C go unchecked). This
// covers the thin macOS glue (systray, darwinkit) that `go vet` with
// CGO_ENABLED=0 skips.
//
//	go run ./internal/darwincheck ./app/...
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	DepOnly    bool
	ImportMap  map[string]string
	Error      *struct{ Err string }
}

func main() {
	patterns := os.Args[1:]
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	n, err := check(patterns, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "darwincheck:", err)
		os.Exit(2)
	}
	if n > 0 {
		fmt.Printf("%d error(s)\n", n)
		os.Exit(1)
	}
}

// check type-checks patterns (and, silently, their dependencies) and writes
// the errors of the named packages to w, returning how many there were.
func check(patterns []string, w io.Writer) (int, error) {
	cmd := exec.Command("go", append([]string{"list", "-e", "-deps", "-json=ImportPath,Dir,GoFiles,CgoFiles,DepOnly,ImportMap,Error"}, patterns...)...)
	cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("go list: %v: %s", err, stderr.String())
	}
	var pkgs []*pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			return 0, err
		}
		pkgs = append(pkgs, &p)
	}
	fset := token.NewFileSet()
	checked := map[string]*types.Package{"unsafe": types.Unsafe}
	errors := 0
	for _, p := range pkgs { // go list -deps lists dependencies first
		if p.ImportPath == "unsafe" {
			continue
		}
		if p.Error != nil && !p.DepOnly {
			fmt.Fprintf(w, "%s: %s\n", p.ImportPath, p.Error.Err)
			errors++
			continue
		}
		var files []*ast.File
		for _, name := range append(append([]string{}, p.GoFiles...), p.CgoFiles...) {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				if !p.DepOnly {
					fmt.Fprintln(w, err)
					errors++
				}
				continue
			}
			files = append(files, f)
		}
		var errs []error
		conf := types.Config{
			FakeImportC: true,
			Sizes:       types.SizesFor("gc", "arm64"),
			Importer: importerFunc(func(path string) (*types.Package, error) {
				if mapped, ok := p.ImportMap[path]; ok {
					path = mapped
				}
				if tp, ok := checked[path]; ok {
					return tp, nil
				}
				return nil, fmt.Errorf("package %s not checked yet", path)
			}),
			Error: func(err error) { errs = append(errs, err) },
		}
		tp, _ := conf.Check(p.ImportPath, fset, files, nil)
		checked[p.ImportPath] = tp
		if !p.DepOnly {
			for _, e := range errs {
				fmt.Fprintln(w, relative(e.Error()))
				errors++
			}
		}
	}
	return errors, nil
}

type importerFunc func(string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

func relative(msg string) string {
	if wd, err := os.Getwd(); err == nil {
		return strings.ReplaceAll(msg, wd+string(filepath.Separator), "")
	}
	return msg
}
