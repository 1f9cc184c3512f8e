package runtime

import (
	"fmt"
	"strings"
)

// ErrClass is what a failed CLI call means, decided by substring of its
// stderr (the code prefixes differ between versions; apple-container.md §5).
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
	ErrUnknownFlag
)

// CLIError is a non-zero exit of the container CLI.
type CLIError struct {
	Args     []string
	ExitCode int
	Stderr   string
	Class    ErrClass
}

// newCLIError records a failed call, classified.
func newCLIError(args []string, exitCode int, stderr string) *CLIError {
	return &CLIError{Args: args, ExitCode: exitCode, Stderr: stderr, Class: Classify(stderr, exitCode)}
}

func (e *CLIError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
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

// Classify decides what a failure means from its stderr and exit code.
func Classify(stderr string, exitCode int) ErrClass {
	s := strings.ToLower(stderr)
	switch {
	case exitCode == 64 || strings.Contains(s, "unknown option"):
		return ErrUnknownFlag
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
	case strings.Contains(s, "already exists"):
		return ErrAlreadyExists
	case strings.Contains(s, "can not be deleted"):
		return ErrRunningCannotDelete
	case strings.Contains(s, "is not running"):
		return ErrNotRunning
	case strings.Contains(s, "not found"):
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
