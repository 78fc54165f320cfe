//go:build llamacpp

package cdump_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/reference/cdump"
)

// summaryLine is the one line a successful run prints (on stderr).
var summaryLine = regexp.MustCompile(`^layerdiff-dump: [0-9]+ nodes \([0-9]+ stored\) -> (.*)$`)

// TestNoStrayOutput runs the C dumper with stdout and stderr redirected to
// files, as in a script or a CI log: without -v it must print its one
// summary line and nothing else (no progress line, no '\r', none of
// llama.cpp's model-loading dots); with -v every line of llama.cpp's log
// is whole and none is a row of dots. Nothing goes to stdout.
func TestNoStrayOutput(t *testing.T) {
	_, q8 := fixtureModels(t)
	for _, verbose := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "d")
		args := []string{"layerdiff-dump", "-m", q8, "-o", out, "--threads", "2", "-t", "1,45,99"}
		if verbose {
			args = append(args, "-v")
		}
		var rc int
		stdout, stderr, ok := captureOutput(t, func() { rc = cdump.Main(args...) })
		if rc != 0 {
			t.Fatalf("verbose %v: exit status %d\n%s", verbose, rc, stderr)
		}
		if !ok {
			t.Skip("output cannot be captured on this system")
		}
		if stdout != "" {
			t.Errorf("verbose %v: stdout %q, want nothing", verbose, stdout)
		}
		if strings.Contains(stderr, "\r") {
			t.Errorf("verbose %v: stderr has a carriage return (a progress line) although it is not a terminal: %q", verbose, stderr)
		}
		if !strings.HasSuffix(stderr, "\n") {
			t.Errorf("verbose %v: stderr does not end with a newline: %q", verbose, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if m := summaryLine.FindStringSubmatch(lines[len(lines)-1]); m == nil || m[1] != out {
			t.Errorf("verbose %v: last line %q, want the summary naming %s", verbose, lines[len(lines)-1], out)
		}
		if !verbose && len(lines) != 1 {
			t.Errorf("stderr has %d lines, want the summary alone:\n%s", len(lines), stderr)
		}
		for _, l := range lines {
			if l != "" && strings.Trim(l, ".") == "" {
				t.Errorf("verbose %v: llama.cpp's model-loading progress %q on stderr", verbose, l)
			}
		}
	}
}

// TestProgressOnTerminal runs the C dumper with stderr on a
// pseudo-terminal: it shows its progress there, and when it is done the
// screen holds the summary line and nothing else (the status line was
// erased, and no row of dots was left).
func TestProgressOnTerminal(t *testing.T) {
	_, q8 := fixtureModels(t)
	t.Setenv("TERM", "xterm")
	out := filepath.Join(t.TempDir(), "d")
	var rc int
	raw, ok := onTerminal(t, func() {
		rc = cdump.Main("layerdiff-dump", "-m", q8, "-o", out, "--threads", "2", "-t", "1,45,99")
	})
	if rc != 0 {
		t.Fatalf("exit status %d\n%q", rc, raw)
	}
	if !ok {
		t.Skip("no pseudo-terminal on this system")
	}
	s := strings.ReplaceAll(raw, "\r\n", "\n") // the terminal's ONLCR
	if !strings.Contains(s, "layerdiff-dump: loading the model") {
		t.Errorf("no progress shown on the terminal: %q", raw)
	}
	lines := screen(s)
	if len(lines) != 1 || summaryLine.FindStringSubmatch(lines[0]) == nil {
		t.Errorf("the terminal shows %q, want the summary line alone (raw output %q)", lines, raw)
	}
}

// screen returns the lines a terminal shows after printing s, whose only
// control characters are '\r' (to column 0) and '\n' (to the next line's
// column 0), trailing blanks trimmed; an unfinished last line is listed
// only if it is not blank, with "<no newline>" appended.
func screen(s string) []string {
	var lines []string
	var cur []rune
	col := 0
	for _, r := range s {
		switch r {
		case '\r':
			col = 0
		case '\n':
			lines = append(lines, strings.TrimRight(string(cur), " "))
			cur, col = cur[:0], 0
		default:
			if col < len(cur) {
				cur[col] = r
			} else {
				cur = append(cur, r)
			}
			col++
		}
	}
	if strings.TrimSpace(string(cur)) != "" {
		lines = append(lines, string(cur)+"<no newline>")
	}
	return lines
}
