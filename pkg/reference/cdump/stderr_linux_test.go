//go:build llamacpp && linux

package cdump_test

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"unsafe"

	"github.com/layerdiff/layerdiff/pkg/reference/cdump"
)

// redirect runs f with file descriptor fd pointing at file, then restores
// it. Nothing else may write to fd meanwhile: the tests of this package do
// not run in parallel.
func redirect(t *testing.T, fd int, file *os.File, f func()) {
	t.Helper()
	saved, err := syscall.Dup(fd)
	if err != nil {
		t.Fatalf("dup %d: %v", fd, err)
	}
	defer syscall.Close(saved)
	if err := syscall.Dup3(int(file.Fd()), fd, 0); err != nil {
		t.Fatalf("redirect %d: %v", fd, err)
	}
	defer func() {
		cdump.FlushStdio()
		if err := syscall.Dup3(saved, fd, 0); err != nil {
			panic(fmt.Sprintf("restoring file descriptor %d: %v", fd, err))
		}
	}()
	f()
}

// captureFile runs f with fd redirected to a temporary file and returns
// what was written to it.
func captureFile(t *testing.T, fd int, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp("", "cdump-out-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	redirect(t, fd, tmp, f)
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// captureStderr runs f with file descriptor 2 redirected to a temporary
// file and returns what was written to it (the C dumper reports its errors
// on stderr) and true.
func captureStderr(t *testing.T, f func()) (string, bool) {
	t.Helper()
	return captureFile(t, 2, f), true
}

// captureOutput runs f with file descriptors 1 and 2 redirected to
// temporary files (so neither is a terminal) and returns what was written
// to each, and true.
func captureOutput(t *testing.T, f func()) (stdout, stderr string, ok bool) {
	t.Helper()
	stderr = captureFile(t, 2, func() {
		stdout = captureFile(t, 1, f)
	})
	return stdout, stderr, true
}

// onTerminal runs f with file descriptor 2 on the slave side of a new
// pseudo-terminal and returns everything written to it (with the terminal's
// "\r\n" for "\n") and true, or "" and false when no pseudo-terminal can be
// opened.
func onTerminal(t *testing.T, f func()) (string, bool) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Logf("no pseudo-terminal: %v", err)
		return "", false
	}
	defer master.Close()
	var n, unlock uint32
	if err := ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Logf("unlocking the pseudo-terminal: %v", err)
		return "", false
	}
	if err := ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Logf("naming the pseudo-terminal: %v", err)
		return "", false
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Logf("opening the pseudo-terminal: %v", err)
		return "", false
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once the slave is closed
		got <- b
	}()
	redirect(t, 2, slave, f)
	slave.Close()
	return string(<-got), true
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}
