package policy

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every problem of a policy file.
var ErrInvalid = errors.New("invalid policy")

// ErrRefused is wrapped by every refusal of a rollout spec by a policy, so
// the API maps it to InvalidArgument.
var ErrRefused = errors.New("refused by release policy")

// FileError is one problem of a policy file, at a field of one policy.
type FileError struct {
	// File is the policy file, as given to Load.
	File string
	// Policy is the policy's name; empty when it has none (yet).
	Policy string
	// Doc is the 1-based YAML document of the file the problem is in.
	Doc int
	// Path is the field, e.g. "spec.windows[1].urgencies[0]".
	Path string
	// Detail says what is wrong.
	Detail string
}

func (e FileError) Error() string {
	s := e.File
	switch {
	case e.Policy != "":
		s += ": policy " + e.Policy
	case e.Doc > 0:
		s += fmt.Sprintf(": document %d", e.Doc)
	}
	if e.Path != "" {
		s += ": " + e.Path
	}
	return s + ": " + e.Detail
}

// Unwrap lets errors.Is(err, ErrInvalid) hold.
func (e FileError) Unwrap() error { return ErrInvalid }

// RefusedError is a policy's refusal of a rollout spec.
type RefusedError struct {
	// Policy is the refusing policy's name; empty when no single policy
	// could be chosen.
	Policy string
	// Detail says why, naming the spec fields at fault.
	Detail string
}

func (e *RefusedError) Error() string {
	if e.Policy == "" {
		return e.Detail
	}
	return "policy " + e.Policy + ": " + e.Detail
}

// Unwrap lets errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }

func refuse(policy, format string, args ...any) error {
	return &RefusedError{Policy: policy, Detail: fmt.Sprintf(format, args...)}
}
