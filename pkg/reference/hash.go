package reference

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
)

// FileSHA256 returns the lowercase hex SHA-256 of a file and its size: the
// exact model identity recorded in dump manifests and checked by
// layerdiff run --hash-model.
func FileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// FingerprintVersion prefixes every fingerprint ModelFingerprint returns;
// fingerprints of different versions are never equal.
const FingerprintVersion = "v1"

// FingerprintSample is the size of each data sample ModelFingerprint
// hashes: up to three per tensor.
const FingerprintSample = 4096

// ModelFingerprint returns a cheap identity of the GGUF file at path:
// "v1:" followed by the lowercase hex SHA-256 of the byte stream described
// at [FingerprintFile]. It parses the metadata and reads, per tensor, at
// most 12 KiB of data with ReadAt, so it costs milliseconds whatever the
// file's size. A file that is not valid GGUF (truncated, corrupt) is an
// error naming it.
func ModelFingerprint(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("model fingerprint: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("model fingerprint: %w", err)
	}
	gf, err := gguf.Parse(f, st.Size(), path)
	if err != nil {
		return "", fmt.Errorf("model fingerprint: %w", err)
	}
	return FingerprintFile(gf, f)
}

// FingerprintFile is ModelFingerprint of a GGUF file already parsed as gf,
// whose bytes r holds (the io.ReaderAt given to gguf.Parse, or the file
// reopened: parsing a large vocabulary costs more than the hashing). The
// SHA-256 is taken over, all integers little-endian:
//
//	u64                 gf.Size, the file size in bytes
//	bytes [0, D)        the whole file before the data section: header,
//	                    metadata, tensor infos and their padding (D is
//	                    gf.DataOffset, or the file size if smaller)
//	for every tensor, in file order:
//	  u64 + bytes       name length and name
//	  u32               ggml type
//	  u32, n × i64      number of dimensions, ne[0..n)
//	  u64               data size in bytes (ggml_nbytes, without padding)
//	  bytes             the whole data if it is at most 3 × 4096 bytes;
//	                    else 4096 bytes at each of the data offsets 0,
//	                    (size−4096)/2 (rounded down) and size−4096
//
// It therefore changes with the file size, any metadata key or value
// (vocabulary, hyperparameters, general.file_type...), any tensor's name,
// type, shape or position, a different random seed or training run, and a
// tensor re-quantized from other weights, since those change every block
// of its data. It cannot detect a change confined to the bytes it does not
// sample, all of which lie inside the data of tensors larger than 12 KiB,
// in the padding between tensors, or after the last tensor: for example a
// few bytes (a single weight, a bit flip on disk) changed in the middle of
// a tensor's data away from its three samples, the file size staying the
// same. FileSHA256 is the exact identity for that.
func FingerprintFile(gf *gguf.File, r io.ReaderAt) (string, error) {
	if gf == nil || r == nil {
		return "", errors.New("model fingerprint: no file")
	}
	name := gf.Path
	h := sha256.New()
	var buf [8]byte
	u64 := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		h.Write(buf[:])
	}
	u32 := func(v uint32) {
		binary.LittleEndian.PutUint32(buf[:4], v)
		h.Write(buf[:4])
	}
	u64(uint64(gf.Size))
	head := max(0, min(gf.DataOffset, gf.Size))
	if n, err := io.Copy(h, io.NewSectionReader(r, 0, head)); err != nil || n != head {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("model fingerprint: %s: reading the metadata at offset 0x%x: %w", name, n, err)
	}
	sample := make([]byte, FingerprintSample)
	for i := range gf.Tensors {
		ti := &gf.Tensors[i]
		u64(uint64(len(ti.Name)))
		h.Write([]byte(ti.Name))
		u32(uint32(ti.Type))
		u32(uint32(len(ti.Ne)))
		for _, d := range ti.Ne {
			u64(uint64(d))
		}
		u64(uint64(ti.Size))
		if ti.Size < 0 || ti.Offset > uint64(math.MaxInt64-gf.DataOffset) {
			return "", fmt.Errorf("model fingerprint: %s: tensor %q: data offset 0x%x, size %d out of range", name, ti.Name, ti.Offset, ti.Size)
		}
		start := gf.DataOffset + int64(ti.Offset)
		for _, s := range fingerprintSamples(ti.Size) {
			if err := readSample(h, r, sample, start+s.off, s.n); err != nil {
				return "", fmt.Errorf("model fingerprint: %s: tensor %q: %w", name, ti.Name, err)
			}
		}
	}
	return FingerprintVersion + ":" + hex.EncodeToString(h.Sum(nil)), nil
}

// span is a byte range of a tensor's data: n bytes from off.
type span struct{ off, n int64 }

// fingerprintSamples returns the ranges of a tensor's data of size bytes
// that FingerprintFile hashes, in order.
func fingerprintSamples(size int64) []span {
	const s = FingerprintSample
	if size <= 3*s {
		return []span{{0, size}}
	}
	return []span{{0, s}, {(size - s) / 2, s}, {size - s, s}}
}

// readSample hashes the n bytes at file offset off, reading them in
// pieces of len(buf).
func readSample(h hash.Hash, r io.ReaderAt, buf []byte, off, n int64) error {
	for n > 0 {
		b := buf[:min(n, int64(len(buf)))]
		got, err := r.ReadAt(b, off)
		if got < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading data at offset 0x%x: %w", off+int64(got), err)
		}
		h.Write(b)
		off += int64(len(b))
		n -= int64(len(b))
	}
	return nil
}
