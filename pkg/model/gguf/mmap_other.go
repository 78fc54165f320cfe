//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package gguf

import "os"

// Open parses the GGUF file at path, reading metadata and tensor infos
// through the file descriptor, which stays open until Close; TensorData reads
// each tensor into a new buffer. (On Unix systems Open maps the file.)
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
	return openReaderAt(fd, st.Size(), path)
}
