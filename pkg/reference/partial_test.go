package reference

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestCleanStalePartials: a partial dump whose process has exited is
// removed, one of a running process, another target's and unrelated
// hidden directories are kept.
func TestCleanStalePartials(t *testing.T) {
	dir := t.TempDir()
	// the pid of a process that has exited
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run a child process: %v", err)
	}
	dead := strconv.Itoa(cmd.Process.Pid)
	live := strconv.Itoa(os.Getpid())
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(p, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := mk(".out.partial-" + dead + "-123")
	keep := []string{
		mk(".out.partial-" + live + "-456"),   // a running dump
		mk(".other.partial-" + dead + "-789"), // another target
		mk(".out.partial-notapid"),            // not ours
		mk(".out.partial-" + dead),            // no random part
	}
	got, err := CleanStalePartials(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{stale}) {
		t.Errorf("removed %q, want %q", got, stale)
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed", p)
		}
	}
	if got, err := CleanStalePartials(filepath.Join(dir, "missing", "out")); err != nil || got != nil {
		t.Errorf("missing parent: %q, %v", got, err)
	}
}
