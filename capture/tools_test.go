package capture_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// need reports a missing tool: a test failure when CI is set (the CI
// script installs every tool the kits need), else a skip that says so.
func need(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// python returns a python3 that imports numpy: python3 on PATH, else
// Debian's /usr/bin/python3.
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import numpy").Run() == nil {
			return p
		}
	}
	need(t, "no python3 with numpy (tried python3, /usr/bin/python3; apt-get install python3-numpy)")
	return ""
}

// cargo returns cargo from PATH or ~/.cargo/bin.
func cargo(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cargo"); err == nil {
		return p
	}
	if h, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(h, ".cargo", "bin", "cargo"); exec.Command(p, "--version").Run() == nil {
			return p
		}
	}
	need(t, "no cargo on PATH or in ~/.cargo/bin (apt-get install cargo)")
	return ""
}

// run runs a command in dir and returns its combined output; it fails the
// test on a non-zero exit unless wantErr.
func run(t *testing.T, dir string, wantErr bool, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if (err != nil) != wantErr {
		t.Fatalf("%s %s: err %v (want error %v)\n%s", name, strings.Join(args, " "), err, wantErr, out.String())
	}
	return out.String()
}
