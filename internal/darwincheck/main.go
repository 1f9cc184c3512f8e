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
	"go/constant"
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
		var info *types.Info
		if !p.DepOnly {
			info = &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
		}
		tp, _ := conf.Check(p.ImportPath, fset, files, info)
		checked[p.ImportPath] = tp
		if !p.DepOnly {
			for _, e := range errs {
				fmt.Fprintln(w, relative(e.Error()))
				errors++
			}
			for _, msg := range checkAddMethod(fset, files, info) {
				fmt.Fprintln(w, relative(msg))
				errors++
			}
		}
	}
	return errors, nil
}

// checkAddMethod checks the Go functions given to darwinkit's
// objc.AddMethod(class, objc.Sel("a:b:"), f), which the type system cannot:
// f takes self and then exactly one parameter per colon of the selector —
// no selector parameter, whatever AddMethod's doc comment says
// (darwinkit v0.5.0 objc/call.go wrapGoFuncAsMethodIMP maps Go parameter i
// to ObjC argument i+1; objc/class_test.go Test_AddMethod) — and no Go func
// parameter (objc/type_encodings.go getTypeEncoding panics on one; take a
// block as objc.Block). A wrong count shifts every argument at run time.
func checkAddMethod(fset *token.FileSet, files []*ast.File, info *types.Info) []string {
	const objcPath = "github.com/progrium/darwinkit/objc"
	isObjc := func(e ast.Expr, name string) bool {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		obj := info.Uses[sel.Sel]
		return obj != nil && obj.Pkg() != nil && obj.Pkg().Path() == objcPath && obj.Name() == name
	}
	var msgs []string
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 3 || !(isObjc(call.Fun, "AddMethod") || isObjc(call.Fun, "AddClassMethod")) {
				return true
			}
			where := fset.Position(call.Pos()).String()
			selCall, ok := call.Args[1].(*ast.CallExpr)
			if !ok || !isObjc(selCall.Fun, "Sel") || len(selCall.Args) != 1 {
				msgs = append(msgs, where+": objc.AddMethod: give the selector as objc.Sel(\"literal\") so its arguments can be checked")
				return true
			}
			tv := info.Types[selCall.Args[0]]
			if tv.Value == nil || tv.Value.Kind() != constant.String {
				msgs = append(msgs, where+": objc.AddMethod: give the selector as objc.Sel(\"literal\") so its arguments can be checked")
				return true
			}
			name := constant.StringVal(tv.Value)
			ft := info.Types[call.Args[2]].Type
			if ft == nil {
				return true // a type error already reported
			}
			sig, ok := ft.Underlying().(*types.Signature)
			if !ok {
				msgs = append(msgs, where+": objc.AddMethod: the method is not a func")
				return true
			}
			if want := 1 + strings.Count(name, ":"); sig.Params().Len() != want {
				msgs = append(msgs, fmt.Sprintf("%s: objc.AddMethod %q: the Go func takes %d parameters, want %d (self, then one per argument; no selector parameter)", where, name, sig.Params().Len(), want))
			}
			for i := 0; i < sig.Params().Len(); i++ {
				t := sig.Params().At(i).Type()
				if named, ok := t.(*types.Named); ok && named.Obj().Pkg() != nil && named.Obj().Pkg().Path() == objcPath && named.Obj().Name() == "Selector" {
					msgs = append(msgs, fmt.Sprintf("%s: objc.AddMethod %q: parameter %d is an objc.Selector; the method's selector is not passed", where, name, i+1))
				}
				if _, ok := t.Underlying().(*types.Signature); ok {
					msgs = append(msgs, fmt.Sprintf("%s: objc.AddMethod %q: parameter %d is a Go func; take a block as objc.Block", where, name, i+1))
				}
			}
			return true
		})
	}
	return msgs
}

type importerFunc func(string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

func relative(msg string) string {
	if wd, err := os.Getwd(); err == nil {
		return strings.ReplaceAll(msg, wd+string(filepath.Separator), "")
	}
	return msg
}
