//go:build llamacpp

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/layerdiff/layerdiff/internal/testshared"
)

// readmeCommands returns the `bin/layerdiff ...` command lines of README.md's
// sh code blocks (backslash continuations joined), split into arguments.
func readmeCommands(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds [][]string
	in := false
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			in = true
			continue
		case strings.HasPrefix(line, "```"):
			in = false
			continue
		}
		if !in {
			continue
		}
		if i := strings.Index(line, "  #"); i >= 0 {
			line = line[:i]
		}
		cur += strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), "\\")) + " "
		if strings.HasSuffix(strings.TrimSpace(line), "\\") {
			continue
		}
		if f := shellWords(cur); len(f) > 0 && f[0] == "bin/layerdiff" {
			cmds = append(cmds, f[1:])
		}
		cur = ""
	}
	return cmds
}

// shellWords splits a command line on spaces, honouring double quotes.
func shellWords(s string) []string {
	var out []string
	var w strings.Builder
	inQ, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQ, have = !inQ, true
		case r == ' ' && !inQ:
			if have {
				out = append(out, w.String())
				w.Reset()
				have = false
			}
		default:
			w.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, w.String())
	}
	return out
}

// TestREADMEExamples runs every `bin/layerdiff` example of README.md, in
// order, in a scratch directory, and requires each to succeed (exit 0). The
// examples that read ../shared run when shared/ is present.
func TestREADMEExamples(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) < 5 {
		t.Fatalf("found %d README examples; the parser or the README changed", len(cmds))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	shared := testshared.Find()
	for _, args := range cmds {
		usesShared := false
		for i, a := range args {
			if strings.HasPrefix(a, "../shared/") {
				usesShared = true
				if shared != "" {
					args[i] = filepath.Join(shared, strings.TrimPrefix(a, "../shared/"))
				}
			}
		}
		if usesShared && shared == "" {
			t.Logf("skipped (no shared/): layerdiff %s", strings.Join(args, " "))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, exe, append([]string{"-test.run=^TestLayerdiffProcess$", "--"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), cliProcessEnv+"=1", "NO_COLOR=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("README example failed: layerdiff %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		t.Logf("ok: layerdiff %s", strings.Join(args, " "))
	}
}
