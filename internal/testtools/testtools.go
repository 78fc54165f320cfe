// Package testtools finds the outside tools some tests drive (a python3
// with numpy, cargo). Without them a test skips, except under CI (CI set),
// where .ci/run installs them and their absence is a failure.
package testtools

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Need skips t with the message, or fails it under CI.
func Need(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// NumpyPython returns a python3 that imports numpy: python3 on PATH, else
// Debian's /usr/bin/python3 (Need otherwise).
func NumpyPython(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import numpy").Run() == nil {
			return p
		}
	}
	Need(t, "no python3 with numpy (tried python3, /usr/bin/python3; apt-get install python3-numpy)")
	return ""
}

// Cargo returns cargo from PATH or ~/.cargo/bin (Need otherwise).
func Cargo(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("cargo"); err == nil {
		return p
	}
	if h, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(h, ".cargo", "bin", "cargo"); exec.Command(p, "--version").Run() == nil {
			return p
		}
	}
	Need(t, "no cargo on PATH or in ~/.cargo/bin (apt-get install cargo)")
	return ""
}
