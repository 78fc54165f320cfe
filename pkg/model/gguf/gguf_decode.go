package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// ggufDecoder reads a GGUF file front to back, tracking the offset and the part
// being read so that every error can say where it happened.
type ggufDecoder struct {
	file string
	br   *bufio.Reader
	off  int64 // file offset of the next unread byte
	size int64

	// Context for errors.
	part   string
	index  int
	key    string
	tensor string

	scratch [8]byte
}

// errorf returns a *FormatError at offset off in the current context.
func (d *ggufDecoder) errorf(off int64, format string, args ...any) error {
	return &FormatError{File: d.file, Offset: off, Part: d.part, Index: d.index, Key: d.key, Tensor: d.tensor,
		Msg: fmt.Sprintf(format, args...)}
}

// remaining is the number of bytes after the current offset.
func (d *ggufDecoder) remaining() int64 { return d.size - d.off }

// readFull reads len(b) bytes, which the caller has checked fit in the file.
func (d *ggufDecoder) readFull(b []byte, what string) error {
	n, err := io.ReadFull(d.br, b)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// The reader ended before the size we were given.
			return d.errorf(d.off+int64(n), "unexpected end of data reading %s", what)
		}
		return fmt.Errorf("%s: offset 0x%x: reading %s: %w", d.file, d.off+int64(n), what, err)
	}
	d.off += int64(len(b))
	return nil
}

// fixed reads n ≤ 8 bytes into the scratch buffer.
func (d *ggufDecoder) fixed(n int, what string) ([]byte, error) {
	if int64(n) > d.remaining() {
		return nil, d.errorf(d.off, "unexpected end of file reading %s (%d bytes needed, %d left)", what, n, d.remaining())
	}
	b := d.scratch[:n]
	if err := d.readFull(b, what); err != nil {
		return nil, err
	}
	return b, nil
}

func (d *ggufDecoder) u32(what string) (uint32, error) {
	b, err := d.fixed(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *ggufDecoder) u64(what string) (uint64, error) {
	b, err := d.fixed(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// count reads a u64 count of items each taking exactly size bytes and
// checks that the rest of the file holds them.
func (d *ggufDecoder) count(what string, size int64) (uint64, error) {
	at := d.off
	n, err := d.u64(what)
	if err != nil {
		return 0, err
	}
	if left := d.remaining(); n > uint64(left)/uint64(size) {
		return 0, d.errorf(at, "%s %d exceeds what the %d bytes left in the file can hold", what, n, left)
	}
	return n, nil
}

// items reads a u64 count of variable-size items taking at least minSize
// bytes each. It returns the count, a capacity to allocate that the rest of
// the file can fill, and, when the count cannot fit in the rest of the file,
// a note to add to the error the reading of the items will then meet. (The
// count is not rejected at once so that a truncated file is reported where
// it ends, not at the count.)
func (d *ggufDecoder) items(what string, minSize int64) (n, capacity uint64, note string, err error) {
	at := d.off
	if n, err = d.u64(what); err != nil {
		return 0, 0, "", err
	}
	fit := uint64(d.remaining()) / uint64(minSize)
	if n > fit {
		note = fmt.Sprintf("%s %d at offset 0x%x exceeds what the %d bytes after it can hold", what, n, at, d.remaining())
	}
	return n, min(n, fit, maxPrealloc), note, nil
}

// maxPrealloc caps the elements allocated ahead of reading them: a corrupt
// count in a multi-gigabyte file must not allocate gigabytes before the
// parse fails. Slices grow past it by appending what was actually read.
const maxPrealloc = 1 << 12

// withNote appends note, if any, to the message of a *FormatError.
func withNote(err error, note string) error {
	var fe *FormatError
	if note != "" && errors.As(err, &fe) {
		fe.Msg += " (" + note + ")"
	}
	return err
}

// str reads a GGUF string: u64 length and bytes.
func (d *ggufDecoder) str(what string) (string, error) {
	n, err := d.count(what+" length", 1)
	if err != nil {
		return "", err
	}
	if n <= uint64(d.br.Size()) {
		// Short string: copy it once out of the buffer.
		b, err := d.br.Peek(int(n))
		if len(b) < int(n) {
			if err == nil || err == io.EOF {
				return "", d.errorf(d.off+int64(len(b)), "unexpected end of data reading %s", what)
			}
			return "", fmt.Errorf("%s: offset 0x%x: reading %s: %w", d.file, d.off, what, err)
		}
		s := string(b)
		_, _ = d.br.Discard(int(n))
		d.off += int64(n)
		return s, nil
	}
	b := make([]byte, n)
	if err := d.readFull(b, what); err != nil {
		return "", err
	}
	return string(b), nil
}

// valueType reads an i32 metadata value type and checks it.
func (d *ggufDecoder) valueType(what string) (ValueType, error) {
	at := d.off
	v, err := d.u32(what)
	if err != nil {
		return 0, err
	}
	t := ValueType(v)
	if !t.Valid() {
		return 0, d.errorf(at, "invalid %s %d", what, int32(v))
	}
	return t, nil
}

// value reads one value of type t.
func (d *ggufDecoder) value(t ValueType, depth int) (any, error) {
	switch t {
	case ValueString:
		return d.str("string")
	case ValueArray:
		return d.array(depth + 1)
	}
	b, err := d.fixed(t.Size(), t.String()+" value")
	if err != nil {
		return nil, err
	}
	return decodeScalar(t, b), nil
}

// decodeScalar decodes the little-endian scalar of type t at the start of b.
func decodeScalar(t ValueType, b []byte) any {
	le := binary.LittleEndian
	switch t {
	case ValueUint8:
		return b[0]
	case ValueInt8:
		return int8(b[0])
	case ValueBool:
		return b[0] != 0 // as gguf_reader::read(bool&)
	case ValueUint16:
		return le.Uint16(b)
	case ValueInt16:
		return int16(le.Uint16(b))
	case ValueUint32:
		return le.Uint32(b)
	case ValueInt32:
		return int32(le.Uint32(b))
	case ValueFloat32:
		return math.Float32frombits(le.Uint32(b))
	case ValueUint64:
		return le.Uint64(b)
	case ValueInt64:
		return int64(le.Uint64(b))
	case ValueFloat64:
		return math.Float64frombits(le.Uint64(b))
	}
	panic("model: decodeScalar of non-scalar type " + t.String())
}

// array reads an array: i32 element type, u64 count, elements.
func (d *ggufDecoder) array(depth int) (Array, error) {
	at := d.off
	if depth > maxArrayDepth {
		return Array{}, d.errorf(at, "arrays nested deeper than %d", maxArrayDepth)
	}
	elem, err := d.valueType("array element type")
	if err != nil {
		return Array{}, err
	}
	a := Array{Elem: elem}
	switch elem {
	case ValueString, ValueArray:
		n, capacity, note, err := d.items("array length", elem.minEncodedSize())
		if err != nil {
			return Array{}, err
		}
		if elem == ValueString {
			v := make([]string, 0, capacity)
			for i := uint64(0); i < n; i++ {
				s, err := d.str(fmt.Sprintf("array element %d", i))
				if err != nil {
					return Array{}, withNote(err, note)
				}
				v = append(v, s)
			}
			a.Values = v
		} else {
			v := make([]Array, 0, capacity)
			for i := uint64(0); i < n; i++ {
				x, err := d.array(depth + 1)
				if err != nil {
					return Array{}, withNote(err, note)
				}
				v = append(v, x)
			}
			a.Values = v
		}
		return a, nil
	}
	n, err := d.count("array length", int64(elem.Size()))
	if err != nil {
		return Array{}, err
	}
	switch elem {
	case ValueUint8:
		a.Values, err = readFixedArray(d, n, 1, func(b []byte) uint8 { return b[0] })
	case ValueInt8:
		a.Values, err = readFixedArray(d, n, 1, func(b []byte) int8 { return int8(b[0]) })
	case ValueBool:
		a.Values, err = readFixedArray(d, n, 1, func(b []byte) bool { return b[0] != 0 })
	case ValueUint16:
		a.Values, err = readFixedArray(d, n, 2, binary.LittleEndian.Uint16)
	case ValueInt16:
		a.Values, err = readFixedArray(d, n, 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
	case ValueUint32:
		a.Values, err = readFixedArray(d, n, 4, binary.LittleEndian.Uint32)
	case ValueInt32:
		a.Values, err = readFixedArray(d, n, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
	case ValueFloat32:
		a.Values, err = readFixedArray(d, n, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
	case ValueUint64:
		a.Values, err = readFixedArray(d, n, 8, binary.LittleEndian.Uint64)
	case ValueInt64:
		a.Values, err = readFixedArray(d, n, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
	case ValueFloat64:
		a.Values, err = readFixedArray(d, n, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
	}
	if err != nil {
		return Array{}, err
	}
	return a, nil
}

// readFixedArray reads n elements of size bytes each; the caller has checked
// that n*size bytes remain.
func readFixedArray[T any](d *ggufDecoder, n uint64, size int, dec func([]byte) T) ([]T, error) {
	out := make([]T, n)
	const chunk = 32 << 10
	buf := make([]byte, min(n*uint64(size), chunk/uint64(size)*uint64(size)))
	per := uint64(len(buf) / max(size, 1))
	for i := uint64(0); i < n; {
		m := min(n-i, per)
		b := buf[:m*uint64(size)]
		if err := d.readFull(b, "array elements"); err != nil {
			return nil, err
		}
		for j := uint64(0); j < m; j++ {
			out[i+j] = dec(b[j*uint64(size):])
		}
		i += m
	}
	return out, nil
}

// minTensorInfoSize is the fewest bytes a tensor info takes: name length,
// n_dims, one ne, type, offset.
const minTensorInfoSize = 8 + 4 + 8 + 4 + 8

// minKVSize is the fewest bytes a key/value pair takes: key length, type, a
// one-byte value.
const minKVSize = 8 + 4 + 1

// parse decodes the whole file structure and validates it.
func (d *ggufDecoder) parse() (*File, error) {
	f := &File{Path: d.file, Size: d.size, Alignment: DefaultAlignment}

	// Header.
	d.part = "header"
	if d.size == 0 {
		return nil, d.errorf(0, "empty file")
	}
	magic, err := d.fixed(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		return nil, d.errorf(0, "bad magic %q, want %q", magic, Magic)
	}
	if f.Version, err = d.u32("version"); err != nil {
		return nil, err
	}
	switch v := f.Version; {
	case v == 2 || v == 3:
	case v == 0:
		return nil, d.errorf(4, "invalid GGUF version 0")
	case v == 1:
		return nil, d.errorf(4, "GGUF version 1 is not supported (llama.cpp dropped it)")
	case v&0xffff == 0:
		return nil, d.errorf(4, "version 0x%08x: a big-endian file (version %d byte-swapped)? only little-endian GGUF is supported", v, bits.ReverseBytes32(v))
	default:
		return nil, d.errorf(4, "unsupported GGUF version %d (want 2 or 3)", v)
	}
	nTensors, err := d.u64("n_tensors")
	if err != nil {
		return nil, err
	}
	nKV, capKV, kvNote, err := d.items("n_kv", minKVSize)
	if err != nil {
		return nil, err
	}

	// Key/value pairs.
	d.part = "kv"
	f.KVs = make([]KV, 0, capKV)
	f.kvOffset = make([]int64, 0, capKV)
	f.kvIndex = make(map[string]int, capKV)
	for i := uint64(0); i < nKV; i++ {
		kv, start, err := d.kv(f, int(i))
		if err != nil {
			return nil, withNote(err, kvNote)
		}
		f.kvIndex[kv.Key] = int(i)
		f.KVs = append(f.KVs, kv)
		f.kvOffset = append(f.kvOffset, start)
	}
	d.key = ""

	if i, ok := f.kvIndex[KeyAlignment]; ok {
		// gguf_get_val_u32 aborts on any other type, so llama.cpp needs u32.
		d.index, d.key = i, KeyAlignment
		a, ok := f.KVs[i].Value.(uint32)
		if !ok {
			return nil, d.errorf(f.kvOffset[i], "alignment has type %s, want u32", f.KVs[i].Type)
		}
		if a == 0 || a&(a-1) != 0 {
			return nil, d.errorf(f.kvOffset[i], "alignment %d is not a power of two", a)
		}
		f.Alignment = uint64(a)
		d.key = ""
	}

	// Tensor infos. n_tensors was read before the KVs; its bound is checked
	// against what is left after them.
	d.part = "tensor"
	capT := min(nTensors, uint64(d.remaining())/minTensorInfoSize, maxPrealloc)
	tNote := ""
	if nTensors > uint64(d.remaining())/minTensorInfoSize {
		tNote = fmt.Sprintf("n_tensors %d at offset 0x8 exceeds what the %d bytes after the metadata can hold", nTensors, d.remaining())
	}
	f.Tensors = make([]TensorInfo, 0, capT)
	f.tIndex = make(map[string]int, capT)
	for i := uint64(0); i < nTensors; i++ {
		d.index, d.tensor = int(i), ""
		ti, err := d.tensorInfo(f)
		if err != nil {
			return nil, withNote(err, tNote)
		}
		f.tIndex[ti.Name] = int(i)
		f.Tensors = append(f.Tensors, ti)
	}
	d.tensor = ""

	// Data section: starts at the next multiple of the alignment (the file
	// may end before it when there are no tensors). ggml requires each
	// tensor's offset to be the sum of the padded sizes of the ones before
	// it (gguf_init_from_file_impl: "tensor '%s' has offset %d, expected %d").
	f.DataOffset = int64(pad(uint64(d.off), f.Alignment))
	var want uint64
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		d.index, d.tensor = i, ti.Name
		at := ti.infoOffset
		if ti.Offset%f.Alignment != 0 {
			return nil, d.errorf(at, "data offset 0x%x is not a multiple of the alignment %d", ti.Offset, f.Alignment)
		}
		if ti.Offset != want {
			return nil, d.errorf(at, "data offset 0x%x, want 0x%x: tensor data must follow in info order, each padded to the alignment %d", ti.Offset, want, f.Alignment)
		}
		if f.DataOffset > d.size || ti.Offset > uint64(d.size-f.DataOffset) || ti.Size > d.size-f.DataOffset-int64(ti.Offset) {
			start := uint64(f.DataOffset) + ti.Offset
			return nil, d.errorf(at, "data [0x%x, 0x%x) beyond end of file (size 0x%x)", start, start+uint64(ti.Size), d.size)
		}
		want = pad(ti.Offset+uint64(ti.Size), f.Alignment)
	}
	return f, nil
}

// kv reads key/value pair i and returns it with its file offset.
func (d *ggufDecoder) kv(f *File, i int) (KV, int64, error) {
	d.index, d.key = i, ""
	start := d.off
	key, err := d.str("key")
	if err != nil {
		return KV{}, start, err
	}
	if key == "" {
		return KV{}, start, d.errorf(start, "empty key")
	}
	d.key = key
	if j, dup := f.kvIndex[key]; dup {
		return KV{}, start, d.errorf(start, "duplicate key (first at kv %d)", j)
	}
	t, err := d.valueType("value type")
	if err != nil {
		return KV{}, start, err
	}
	v, err := d.value(t, 0)
	if err != nil {
		return KV{}, start, err
	}
	return KV{Key: key, Type: t, Value: v}, start, nil
}

// tensorInfo reads and validates one tensor info.
func (d *ggufDecoder) tensorInfo(f *File) (TensorInfo, error) {
	start := d.off
	ti := TensorInfo{Index: d.index, infoOffset: start}
	name, err := d.str("name")
	if err != nil {
		return ti, err
	}
	ti.Name = name
	d.tensor = name
	if len(name) > MaxTensorNameLen {
		return ti, d.errorf(start, "name is %d bytes, longer than ggml's limit of %d", len(name), MaxTensorNameLen)
	}
	if j, dup := f.tIndex[name]; dup {
		return ti, d.errorf(start, "duplicate tensor name (first at tensor %d)", j)
	}
	at := d.off
	nDims, err := d.u32("n_dims")
	if err != nil {
		return ti, err
	}
	if nDims == 0 || nDims > MaxDims {
		// ggml's reader accepts 0 (a scalar), but its writer never writes
		// it (ggml_n_dims >= 1); we take 0 for corruption.
		return ti, d.errorf(at, "n_dims %d, want 1 to %d", nDims, MaxDims)
	}
	ti.Ne = make([]int64, nDims)
	var fieldAt [MaxDims + 1]int64 // offsets of ne[0..n_dims-1], then type
	for j := range ti.Ne {
		fieldAt[j] = d.off
		v, err := d.u64(fmt.Sprintf("ne[%d]", j))
		if err != nil {
			return ti, err
		}
		ti.Ne[j] = int64(v)
	}
	fieldAt[nDims] = d.off
	tv, err := d.u32("type")
	if err != nil {
		return ti, err
	}
	ti.Type = quant.Type(tv)
	size, field, msg := tensorSize(ti.Type, ti.Ne)
	if msg != "" {
		if field < 0 {
			field = int(nDims)
		}
		return ti, d.errorf(fieldAt[field], "%s", msg)
	}
	ti.Size = size
	if ti.Offset, err = d.u64("data offset"); err != nil {
		return ti, err
	}
	return ti, nil
}

// tensorSize checks a tensor's shape and type as ggml's gguf reader does
// (gguf_init_from_file_impl) and returns its byte size (ggml_nbytes). On
// failure it returns the index of the offending dimension, or -1 for the
// type, and a message. It requires 1 to 4 dimensions, each non-negative,
// ne[1..] non-zero (ggml's element-count check divides by them), an element
// count and a byte size that fit in an int64, a known type and rows of whole
// blocks.
func tensorSize(t quant.Type, ne []int64) (size int64, field int, msg string) {
	if len(ne) == 0 || len(ne) > MaxDims {
		return 0, -1, fmt.Sprintf("%d dimensions, want 1 to %d", len(ne), MaxDims)
	}
	elems := uint64(1)
	for j, n := range ne {
		switch {
		case n < 0:
			return 0, j, fmt.Sprintf("ne[%d] = %d is negative", j, n)
		case n == 0 && j > 0:
			return 0, j, fmt.Sprintf("ne[%d] = 0: ggml's reader divides by it", j)
		}
		hi, lo := bits.Mul64(elems, uint64(n))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, j, fmt.Sprintf("element count of shape %v overflows int64", ne[:j+1])
		}
		elems = lo
	}
	if !t.Known() {
		return 0, -1, fmt.Sprintf("unknown tensor type %d", int32(t))
	}
	if ne[0]%int64(t.BlockSize()) != 0 {
		return 0, -1, fmt.Sprintf("ne[0] = %d values of type %s is not a multiple of the block size %d", ne[0], t, t.BlockSize())
	}
	row, err := t.RowBytes(ne[0])
	if err != nil {
		return 0, -1, fmt.Sprintf("byte size of shape %v of type %s overflows int64", ne, t)
	}
	if ne[0] == 0 {
		return 0, 0, ""
	}
	hi, lo := bits.Mul64(uint64(row), elems/uint64(ne[0]))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, -1, fmt.Sprintf("byte size of shape %v of type %s overflows int64", ne, t)
	}
	return int64(lo), 0, ""
}

// pad rounds n up to a multiple of align (a power of two), as GGML_PAD.
func pad(n, align uint64) uint64 {
	return (n + align - 1) &^ (align - 1)
}
