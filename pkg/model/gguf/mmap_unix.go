//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package gguf

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// Open parses the GGUF file at path. The file is mapped read-only into
// memory (syscall.Mmap), so TensorData returns slices of the mapping without
// copying; only metadata and tensor infos are decoded. When the file cannot
// be mapped it is read through its descriptor instead. Close releases the
// mapping. If the file is truncated by someone else while mapped, reading a
// tensor beyond the new end raises SIGBUS, as with any mapping.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		fd.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size == 0 || int64(int(size)) != size {
		// Nothing to map (mmap of 0 bytes fails), or too big for this
		// address space: read through the descriptor.
		return openReaderAt(fd, size, path)
	}
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return openReaderAt(fd, size, path)
	}
	fd.Close() // the mapping outlives the descriptor
	f, err := Parse(bytes.NewReader(data), size, path)
	if err != nil {
		syscall.Munmap(data)
		return nil, err
	}
	f.data = data
	f.closer = func() error { return syscall.Munmap(data) }
	return f, nil
}
