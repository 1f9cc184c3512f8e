package runtime

import (
	"fmt"
	"regexp"
	"strings"
)

// ErrClass is what a failed CLI call means.
type ErrClass int

const (
	ErrOther ErrClass = iota
	ErrAPIServerDown
	ErrAPIServerHang
	ErrAlreadyExists
	ErrNotFound
	ErrNotRunning
	ErrRunningCannotDelete
	ErrKernelMissing
	ErrVolumeBusy
	ErrPortInUse
	ErrUsage // exit 64: any usage or validation error (ArgumentParser), not only an unknown flag
)

// CLIError is a non-zero exit of the container CLI.
type CLIError struct {
	Args     []string
	ExitCode int
	Stderr   string
	Stdout   string // shown only when stderr is empty
	Class    ErrClass
}

// newCLIError records a failed call, classified.
func newCLIError(args []string, exitCode int, stderr string) *CLIError {
	return &CLIError{Args: args, ExitCode: exitCode, Stderr: stderr, Class: Classify(stderr, exitCode)}
}

func (e *CLIError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		// Some failures print their reason on stdout and exit with
		// ExitCode(1), which prints nothing: `image load` of a missing
		// file before 1.0 ("File does not exist …", ImageLoad.swift).
		msg = strings.TrimSpace(e.Stdout)
	}
	msg = strings.TrimPrefix(msg, "Error: ")
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", " ")), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if msg == "" {
		msg = fmt.Sprintf("exit status %d", e.ExitCode)
	}
	return fmt.Sprintf("`container %s` failed: %s", strings.Join(e.Args, " "), msg)
}

// codeRe finds ContainerizationError codes as printed by their description,
// `<code>: "<message>"` (containerization ContainerizationError.swift). Before
// container 0.10 every error prints so; from 0.10 ArgumentParser prints the
// LocalizedError message without the code, but causes, AggregateError (stop,
// kill, delete) and InspectError (image inspect 0.9–0.12) still show codes.
var codeRe = regexp.MustCompile(`(?:^|[\s("\[,])(unknown|invalidArgument|internalError|exists|notFound|cancelled|invalidState|empty|timeout|unsupported|interrupted): "`)

// Codes returns the error codes in stderr, outermost first.
func Codes(stderr string) []string {
	var out []string
	for _, m := range codeRe.FindAllStringSubmatch(stderr, -1) {
		out = append(out, m[1])
	}
	return out
}

// Classify decides what a failure means from its exit code and stderr: the
// exit code first (64 = usage), then the transport failures that have no code
// of their own, then the ContainerizationError codes, and the 1.x texts only
// where the version prints no code (LocalizedError messages since 0.10):
//
//	image inspect, missing: 0.6–0.8 `notFound: "images: <ref>"`; 0.9–0.12
//	  InspectError(… notFound: "Image not found" …); 1.x `image not found: <ref>`
//	delete, missing: 0.6–0.9 `notFound: "failed to delete one or more
//	  containers: [...]"`; 0.10 the same message without its code (callers
//	  confirm with the container listing); 0.11+ `… (cause: "notFound: …")`
func Classify(stderr string, exitCode int) ErrClass {
	if exitCode == 64 {
		return ErrUsage
	}
	s := strings.ToLower(stderr)
	switch {
	case strings.Contains(s, "xpc timeout"):
		return ErrAPIServerHang
	case strings.Contains(s, "xpc connection error"), strings.Contains(s, "has been started with `container system start`"),
		strings.Contains(s, "apiserver is not running"):
		return ErrAPIServerDown
	case strings.Contains(s, "default kernel not configured"):
		return ErrKernelMissing
	case strings.Contains(s, "is currently in use"):
		return ErrVolumeBusy
	case strings.Contains(s, "address already in use"):
		return ErrPortInUse
	}
	codes := Codes(stderr)
	for i := len(codes) - 1; i >= 0; i-- { // the innermost cause is the most specific
		switch codes[i] {
		case "notFound":
			return ErrNotFound
		case "exists":
			return ErrAlreadyExists
		case "invalidState":
			switch {
			case strings.Contains(s, "can not be deleted"), strings.Contains(s, "container is running"):
				return ErrRunningCannotDelete
			case strings.Contains(s, "is not running"):
				return ErrNotRunning
			}
		}
	}
	// 1.x LocalizedError messages (no code printed).
	switch {
	case strings.Contains(s, "already exists"):
		return ErrAlreadyExists
	case strings.Contains(s, "can not be deleted"):
		return ErrRunningCannotDelete
	case strings.Contains(s, "is not running"):
		return ErrNotRunning
	case strings.Contains(s, "not found"): // "image not found: <ref>", "volume not found: <n>", "container not found: <id>"
		return ErrNotFound
	}
	return ErrOther
}

// IsClass reports whether err is a CLIError of class c.
func IsClass(err error, c ErrClass) bool {
	for err != nil {
		if ce, ok := err.(*CLIError); ok {
			return ce.Class == c
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
