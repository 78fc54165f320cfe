package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.txt")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	cases := []struct {
		name    string
		write   func(io.Writer) error
		want    string
		wantErr error
	}{
		{"replaces", func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }, "new", nil},
		{"failed write keeps the old file", func(w io.Writer) error { io.WriteString(w, "partial"); return boom }, "new", boom},
	}
	for _, c := range cases {
		err := Write(p, c.write)
		if !errors.Is(err, c.wantErr) {
			t.Fatalf("%s: error %v, want %v", c.name, err, c.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name the file", c.name, err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != c.want {
			t.Errorf("%s: file holds %q, want %q", c.name, b, c.want)
		}
		st, _ := os.Stat(p)
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v", c.name, st.Mode())
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("%s: %d files left in the directory, want 1", c.name, len(ents))
		}
	}
	// A panicking writer leaves no temporary file either.
	func() {
		defer func() { recover() }()
		Write(p, func(io.Writer) error { panic("writer panicked") })
	}()
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("panic: %d files left in the directory", len(ents))
	}
	if err := Write(filepath.Join(dir, "missing", "x"), func(io.Writer) error { return nil }); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
