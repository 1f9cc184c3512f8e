// Package problem gives every failure the user can meet a kind, a one-line
// message and a fix, and maps kinds to the CLI's documented exit codes.
package problem

import (
	"errors"
	"fmt"
)

// Kind classifies a failure; each kind has one exit code (see ExitCode).
type Kind int

const (
	Internal   Kind = iota // a bug or an unexpected OS error
	Usage                  // bad command line
	Config                 // bad config file
	Runtime                // Apple's container CLI missing, too old, not started, hanging, or answering garbage
	Keys                   // SSH keys missing, corrupt, mismatched or with unsafe modes
	NotRunning             // the builder is not running
	Unhealthy              // the builder runs but SSH or nix-daemon does not answer as they must
	Timeout                // an operation did not finish in time
	Conflict               // something else holds what we need (port, name, volume, lock)
	Setup                  // the privileged setup step failed or is not allowed
)

// Exit codes, documented in README.md ("Exit codes"). They never change meaning.
var exitCodes = map[Kind]int{
	Internal:   1,
	Usage:      2,
	Config:     3,
	Runtime:    4,
	Keys:       5,
	NotRunning: 6,
	Unhealthy:  7,
	Timeout:    8,
	Conflict:   9,
	Setup:      10,
}

// Error is a user-facing failure: what went wrong and how to fix it.
type Error struct {
	Kind Kind
	What string // what failed, naming the file, key, command or address
	Fix  string // what the user should do; empty when there is nothing to do
	Err  error  // the underlying cause, if any
}

func (e *Error) Error() string {
	msg := e.What
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Fix != "" {
		msg += " (fix: " + e.Fix + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns a problem of the given kind.
func New(kind Kind, what, fix string) *Error {
	return &Error{Kind: kind, What: what, Fix: fix}
}

// Wrap returns a problem of the given kind caused by err.
func Wrap(kind Kind, err error, what, fix string) *Error {
	return &Error{Kind: kind, What: what, Fix: fix, Err: err}
}

// Newf formats What.
func Newf(kind Kind, fix, format string, args ...any) *Error {
	return &Error{Kind: kind, What: fmt.Sprintf(format, args...), Fix: fix}
}

// KindOf reports the kind of err, Internal when err carries none.
func KindOf(err error) Kind {
	var p *Error
	if errors.As(err, &p) {
		return p.Kind
	}
	return Internal
}

// Is reports whether err is a problem of kind k.
func Is(err error, k Kind) bool {
	var p *Error
	return errors.As(err, &p) && p.Kind == k
}

// ExitCode maps err to the process exit code: 0 for nil.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	return exitCodes[KindOf(err)]
}

// ExitCodeOf returns the exit code of a kind.
func ExitCodeOf(k Kind) int { return exitCodes[k] }
