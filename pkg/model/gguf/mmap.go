package gguf

import "os"

// openReaderAt parses fd without mapping it; the returned File keeps fd open
// until Close.
func openReaderAt(fd *os.File, size int64, path string) (*File, error) {
	f, err := Parse(fd, size, path)
	if err != nil {
		fd.Close()
		return nil, err
	}
	f.closer = fd.Close
	return f, nil
}
