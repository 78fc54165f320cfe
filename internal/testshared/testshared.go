// Package testshared finds the project's read-only shared/ folder (real
// llama.cpp models, logs and vocabularies) for tests, which must pass
// without it.
package testshared

import (
	"os"
	"path/filepath"
	"testing"
)

// Find returns the shared/ folder found by walking up from the working
// directory (a sibling of the repository in CI and development), or "" when
// there is none.
func Find() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, "shared")
		if st, err := os.Stat(filepath.Join(p, "vocab")); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Dir returns the shared/ folder or skips the test.
func Dir(t testing.TB) string {
	t.Helper()
	d := Find()
	if d == "" {
		t.Skip("shared/ not found")
	}
	return d
}

// File returns shared/rel or skips the test when it is absent.
func File(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Dir(t), rel)
	if _, err := os.Stat(p); err != nil {
		t.Skip(err)
	}
	return p
}
