package reference

import (
	"errors"
	"fmt"
)

// ErrFormat is matched (errors.Is) by every error that reports malformed
// input: a corrupt .npy file, manifest or log.
var ErrFormat = errors.New("malformed reference data")

// ErrNoData is matched (errors.Is) by the error [Source.Load] returns for a
// node that exists but whose values were not recorded (a quantized node in a
// text log, a node the dumper chose not to store).
var ErrNoData = errors.New("no data recorded for this node")

// ErrNotFound is matched (errors.Is) by the error [Source.Load] returns for a
// key the source does not have.
var ErrNotFound = errors.New("no such node")

// FormatError reports malformed input and where it is: the file, and a line
// number (text formats) or a byte offset (binary formats) when known.
type FormatError struct {
	File   string // path of the file, "" when decoding from memory
	Line   int    // 1-based line number, 0 if not applicable
	Offset int64  // byte offset, -1 if not applicable
	Msg    string
}

// Error formats the error as "file:line: msg" or "file: offset N: msg".
func (e *FormatError) Error() string {
	s := e.File
	if s == "" {
		s = "<input>"
	}
	switch {
	case e.Line > 0:
		s += fmt.Sprintf(":%d", e.Line)
	case e.Offset >= 0:
		s += fmt.Sprintf(": offset %d", e.Offset)
	}
	return s + ": " + e.Msg
}

// Is makes errors.Is(err, ErrFormat) true for every FormatError.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

func offsetErr(file string, off int64, format string, args ...any) error {
	return &FormatError{File: file, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func lineErr(file string, line int, format string, args ...any) error {
	return &FormatError{File: file, Line: line, Offset: -1, Msg: fmt.Sprintf(format, args...)}
}

func fileErr(file string, format string, args ...any) error {
	return &FormatError{File: file, Offset: -1, Msg: fmt.Sprintf(format, args...)}
}
