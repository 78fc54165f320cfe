//go:build llamacpp

package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/reference"
)

// copyDump copies the dump directory src to dst (hard links where
// possible) with its manifest passed through edit.
func copyDump(t *testing.T, src, dst string, edit func(*reference.Manifest)) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == reference.ManifestFile || e.IsDir() {
			continue
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if os.Link(from, to) == nil {
			continue
		}
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := reference.ReadManifest(src)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	if err := m.Write(dst); err != nil {
		t.Fatal(err)
	}
}

// TestRunModelIdentity checks that llama.cpp dumps record the model's
// fingerprint next to its sha256, and that layerdiff run warns MODEL
// MISMATCH exactly when the recorded identity differs from --model's:
// by fingerprint, or by full SHA-256 for dumps without one (small-file
// hashing off, so that the fingerprint path is the one tested).
func TestRunModelIdentity(t *testing.T) {
	modelPath := fixtureModel(t, "llama", "q8_0")
	d := dumpOf(t, modelPath, "on")
	fp, err := reference.ModelFingerprint(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	sha, _, err := reference.FileSHA256(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Manifest.Model; got.Fingerprint != fp || got.SHA256 != sha {
		t.Fatalf("manifest model fingerprint %q, sha256 %q; want %q, %q", got.Fingerprint, got.SHA256, fp, sha)
	}
	zeros := strings.Repeat("0", 64)
	cases := []struct {
		name     string
		edit     func(*reference.Manifest)
		mismatch string // substring of the first warning; "" for no MODEL MISMATCH
		hashed   bool   // our side's sha256 was computed
	}{
		{"as dumped", func(*reference.Manifest) {}, "", false},
		{"wrong fingerprint", func(m *reference.Manifest) { m.Model.Fingerprint = "v1:" + zeros }, "(fingerprint v1:" + zeros + "), not from " + modelPath + " (fingerprint " + fp + ")", false},
		{"older dump without fingerprint", func(m *reference.Manifest) { m.Model.Fingerprint = "" }, "", true},
		{"older dump, wrong sha256", func(m *reference.Manifest) { m.Model.Fingerprint, m.Model.SHA256 = "", zeros }, "(sha256 " + zeros + "), not from " + modelPath + " (sha256 " + sha + ")", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dump")
			copyDump(t, d.Dir, dir, c.edit)
			ref, err := reference.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Run(ref, modelPath, RunOptions{Threads: 2, FullHashLimit: -1})
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(r.Warnings, "\n")
			switch {
			case c.mismatch == "" && strings.Contains(all, "MODEL MISMATCH"):
				t.Errorf("false MODEL MISMATCH:\n%s", all)
			case c.mismatch != "" && (len(r.Warnings) == 0 || !strings.HasPrefix(r.Warnings[0], "MODEL MISMATCH") || !strings.Contains(r.Warnings[0], c.mismatch)):
				t.Errorf("first warning is not a MODEL MISMATCH containing %q:\n%s", c.mismatch, all)
			}
			if (r.Meta.Other.ModelSHA256 != "") != c.hashed {
				t.Errorf("our model_sha256 %q: want computed = %v", r.Meta.Other.ModelSHA256, c.hashed)
			}
			wantPass(t, c.name, r)
		})
	}
}
