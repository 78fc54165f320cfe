//go:build llamacpp && linux

package cdump_test

import (
	"os"
	"syscall"
	"testing"
)

// captureStderr runs f with file descriptor 2 redirected to a temporary
// file and returns what was written to it (the C dumper reports its errors
// on stderr) and true. Nothing else may write to stderr meanwhile: the
// tests of this package do not run in parallel.
func captureStderr(t *testing.T, f func()) (string, bool) {
	t.Helper()
	tmp, err := os.CreateTemp("", "cdump-stderr-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatalf("dup stderr: %v", err)
	}
	defer syscall.Close(saved)
	if err := syscall.Dup3(int(tmp.Fd()), 2, 0); err != nil {
		t.Fatalf("redirect stderr: %v", err)
	}
	func() {
		defer func() {
			if err := syscall.Dup3(saved, 2, 0); err != nil {
				panic("restoring stderr: " + err.Error())
			}
		}()
		f()
	}()
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}
