package spec

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every validation failure, so callers can map it to
// InvalidArgument with errors.Is.
var ErrInvalid = errors.New("invalid rollout manifest")

// FieldError is one problem at one field path.
type FieldError struct {
	Path   string
	Detail string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Detail }

// Errors is every problem found in one manifest, in document order.
type Errors []FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.Is(err, ErrInvalid) hold.
func (es Errors) Unwrap() error { return ErrInvalid }

// errs collects field errors while walking a manifest.
type errs struct{ list Errors }

func (c *errs) add(path, format string, args ...any) {
	c.list = append(c.list, FieldError{Path: path, Detail: fmt.Sprintf(format, args...)})
}

func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	return c.list
}
