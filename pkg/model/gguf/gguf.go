package gguf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// GGUF file layout, as read by ggml's gguf_init_from_file_impl (gguf.cpp,
// llama.cpp ec98e2002). All integers are little-endian.
//
//	offset  size      field
//	0       4         magic "GGUF"
//	4       4         u32 version (2 or 3; 1 is no longer supported)
//	8       8         i64 n_tensors
//	16      8         i64 n_kv
//	24      ...       n_kv key/value pairs:
//	                    string key (u64 length + bytes, no terminator)
//	                    i32 value type (ValueType)
//	                    value: scalar bytes, or a string, or for ARRAY:
//	                      i32 element type, u64 count, count elements
//	...     ...       n_tensors tensor infos:
//	                    string name (< 64 bytes, unique)
//	                    u32 n_dims (1..4)
//	                    i64 ne[n_dims] (ggml order: ne[0] varies fastest)
//	                    i32 ggml type (Type)
//	                    u64 offset of the data, relative to the data section
//	...     ...       zero padding up to a multiple of the alignment
//	DataOffset        tensor data, each tensor padded to the alignment
//
// The alignment is the u32 value of "general.alignment", 32 when absent.

// Magic is the four bytes every GGUF file starts with.
const Magic = "GGUF"

// DefaultAlignment is the data alignment used when a file has no
// general.alignment key (GGUF_DEFAULT_ALIGNMENT).
const DefaultAlignment = 32

// MaxTensorNameLen is the longest tensor name ggml accepts: names must be
// shorter than GGML_MAX_NAME (64) bytes to fit with their terminator.
const MaxTensorNameLen = 63

// MaxDims is GGML_MAX_DIMS, the most dimensions a tensor may have.
const MaxDims = 4

// maxArrayDepth bounds the nesting of arrays of arrays. ggml itself rejects
// nested arrays; the GGUF spec allows them, so they are read, but a file
// nesting deeper than this is taken for an attack on the stack.
const maxArrayDepth = 16

// KeyAlignment is the metadata key that sets the data alignment.
const KeyAlignment = "general.alignment"

// KeyArchitecture is the metadata key naming the model architecture.
const KeyArchitecture = "general.architecture"

// ErrFormat is matched (errors.Is) by every error reporting a malformed GGUF
// file or a metadata value of the wrong type.
var ErrFormat = errors.New("invalid GGUF")

// ErrKeyNotFound is matched (errors.Is) by the getters' errors for a key the
// file does not have.
var ErrKeyNotFound = errors.New("metadata key not found")

// FormatError describes a malformed GGUF file: the file, the byte offset of
// the offending field, the part of the file (header, a key/value pair, a
// tensor) and what is wrong. Its Error reads, for example,
//
//	model.gguf: offset 0x2a8: tensor 17 "blk.1.ffn_up.weight": data [0x5e0c00, 0x5f0c00) beyond end of file (size 0x5e1000)
type FormatError struct {
	File   string // file name as given to Open or Parse
	Offset int64  // file offset of the offending field; -1 when none applies
	Part   string // "header", "kv", "tensor" or "" (whole file)
	Index  int    // index of the key/value pair or tensor; -1 when unknown
	Key    string // metadata key, when Part is "kv" and the key was read
	Tensor string // tensor name, when Part is "tensor" and the name was read
	Msg    string // what is wrong
}

// Error formats e as "file: offset 0x..: where: what".
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	if e.Offset >= 0 {
		fmt.Fprintf(&b, "offset 0x%x: ", e.Offset)
	}
	switch e.Part {
	case "kv":
		b.WriteString("kv")
		if e.Index >= 0 {
			fmt.Fprintf(&b, " %d", e.Index)
		}
		if e.Key != "" {
			fmt.Fprintf(&b, " %q", e.Key)
		}
		b.WriteString(": ")
	case "tensor":
		b.WriteString("tensor")
		if e.Index >= 0 {
			fmt.Fprintf(&b, " %d", e.Index)
		}
		if e.Tensor != "" {
			fmt.Fprintf(&b, " %q", e.Tensor)
		}
		b.WriteString(": ")
	case "":
	default:
		b.WriteString(e.Part)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, ErrFormat) true for every *FormatError.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// ValueType is the type of a GGUF metadata value (enum gguf_type).
type ValueType uint32

// GGUF metadata value types, numbered as in gguf.h.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"}

// String is gguf_type_name ("u8", "f32", "str", "arr", ...), or
// "gguf_type(N)" for a type outside the enum.
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("gguf_type(%d)", uint32(t))
}

// Valid reports whether t is one of the 13 GGUF value types.
func (t ValueType) Valid() bool { return t <= ValueFloat64 }

// Size is the encoded size of a scalar of type t (gguf_type_size): 0 for
// strings, arrays and unknown types.
func (t ValueType) Size() int {
	switch t {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}

// minEncodedSize is the fewest bytes one value of type t can take in a file;
// counts read from a file are checked against it before allocating.
func (t ValueType) minEncodedSize() int64 {
	switch t {
	case ValueString:
		return 8 // u64 length
	case ValueArray:
		return 12 // i32 element type + u64 count
	}
	return int64(t.Size())
}

// KV is one metadata key/value pair.
//
// Value holds, for Type: ValueUint8 a uint8, ValueInt8 an int8, ValueUint16
// a uint16, ValueInt16 an int16, ValueUint32 a uint32, ValueInt32 an int32,
// ValueFloat32 a float32, ValueBool a bool, ValueString a string, ValueUint64
// a uint64, ValueInt64 an int64, ValueFloat64 a float64, and ValueArray an
// Array.
type KV struct {
	Key   string
	Type  ValueType
	Value any
}

// Array is the value of an array-typed KV. Values is a typed slice matching
// Elem: []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32,
// []bool, []string, []uint64, []int64, []float64, or []Array for an array of
// arrays (allowed by the GGUF spec, rejected by ggml's reader).
type Array struct {
	Elem   ValueType
	Values any
}

// Len is the number of elements of a, or -1 when Values is not one of the
// slice types listed for Array.
func (a Array) Len() int {
	switch v := a.Values.(type) {
	case []uint8:
		return len(v)
	case []int8:
		return len(v)
	case []uint16:
		return len(v)
	case []int16:
		return len(v)
	case []uint32:
		return len(v)
	case []int32:
		return len(v)
	case []float32:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	case []uint64:
		return len(v)
	case []int64:
		return len(v)
	case []float64:
		return len(v)
	case []Array:
		return len(v)
	}
	return -1
}

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	Name   string
	Ne     []int64 // shape in ggml order: Ne[0] varies fastest (values per row)
	Type   quant.Type
	Offset uint64 // byte offset of the data, relative to File.DataOffset
	Size   int64  // bytes of data (ggml_nbytes), without padding
	Index  int    // position in File.Tensors

	infoOffset int64 // file offset of the tensor info record, for errors
}

// Elements is the number of values in the tensor, the product of Ne.
func (ti *TensorInfo) Elements() int64 {
	n := int64(1)
	for _, d := range ti.Ne {
		n *= d
	}
	return n
}

// File is a parsed GGUF file. Metadata and tensor infos are decoded in
// memory; tensor data stays in the file (mapped by Open, or read on demand
// from the io.ReaderAt given to Parse) until TensorData asks for it.
//
// A File is safe for concurrent use by readers, but not concurrently with
// Close.
type File struct {
	Path       string // name as given to Open or Parse
	Version    uint32 // GGUF version, 2 or 3
	Alignment  uint64 // data alignment: general.alignment, or 32
	KVs        []KV   // metadata in file order
	Tensors    []TensorInfo
	DataOffset int64 // file offset of the data section
	Size       int64 // file size in bytes

	r        io.ReaderAt
	data     []byte // the mapped file, when Open mapped it
	closer   func() error
	kvIndex  map[string]int
	kvOffset []int64 // file offset of each KV record
	tIndex   map[string]int
}

// Parse reads the GGUF file of size bytes held by r. name is used in error
// messages and as File.Path. Only metadata and tensor infos are read; tensor
// data is read from r by TensorData, so r must stay usable while the File is.
// Every count and length is checked against the bytes remaining before
// anything is allocated for it, and counts of variable-size items preallocate
// at most 4096 elements, so a corrupt file makes Parse allocate no more than
// a small multiple of the bytes it actually decodes.
func Parse(r io.ReaderAt, size int64, name string) (*File, error) {
	if size < 0 {
		return nil, &FormatError{File: name, Offset: -1, Index: -1, Msg: fmt.Sprintf("negative size %d", size)}
	}
	d := &ggufDecoder{
		file:  name,
		br:    bufio.NewReaderSize(io.NewSectionReader(r, 0, size), int(min(size, 64<<10))),
		size:  size,
		index: -1,
	}
	f, err := d.parse()
	if err != nil {
		return nil, err
	}
	f.r = r
	return f, nil
}

// Close releases the file's mapping or descriptor. Slices returned by
// TensorData from a mapped file must not be used after Close.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer()
	f.closer = nil
	f.data = nil
	f.r = nil
	return err
}

// KV returns the metadata pair with the given key.
func (f *File) KV(key string) (KV, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return KV{}, false
	}
	return f.KVs[i], true
}

// Has reports whether the file has metadata key key.
func (f *File) Has(key string) bool {
	_, ok := f.kvIndex[key]
	return ok
}

// Arch returns general.architecture, or "" when it is absent or not a string.
func (f *File) Arch() string {
	s, _ := f.String(KeyArchitecture)
	return s
}

// lookup finds key and returns its KV, or an ErrKeyNotFound error.
func (f *File) lookup(key string) (KV, int, error) {
	i, ok := f.kvIndex[key]
	if !ok {
		return KV{}, -1, fmt.Errorf("%s: %q: %w", f.Path, key, ErrKeyNotFound)
	}
	return f.KVs[i], i, nil
}

// typeError reports that KV i holds a value of the wrong type.
func (f *File) typeError(i int, want string) error {
	kv := f.KVs[i]
	got := kv.Type.String()
	if a, ok := kv.Value.(Array); ok && kv.Type == ValueArray {
		got = fmt.Sprintf("array of %s", a.Elem)
	}
	off := int64(-1)
	if i < len(f.kvOffset) {
		off = f.kvOffset[i]
	}
	return &FormatError{File: f.Path, Offset: off, Part: "kv", Index: i, Key: kv.Key,
		Msg: fmt.Sprintf("value has type %s, want %s", got, want)}
}

// String returns the string value of key.
func (f *File) String(key string) (string, error) {
	kv, i, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	if s, ok := kv.Value.(string); ok && kv.Type == ValueString {
		return s, nil
	}
	return "", f.typeError(i, "str")
}

// Uint returns the value of key, which must be an unsigned integer or a
// non-negative signed integer of any width.
func (f *File) Uint(key string) (uint64, error) {
	kv, i, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	switch v := kv.Value.(type) {
	case uint8:
		return uint64(v), nil
	case uint16:
		return uint64(v), nil
	case uint32:
		return uint64(v), nil
	case uint64:
		return v, nil
	case int8, int16, int32, int64:
		n := toInt64(v)
		if n < 0 {
			return 0, &FormatError{File: f.Path, Offset: f.kvOffset[i], Part: "kv", Index: i, Key: key,
				Msg: fmt.Sprintf("value %d is negative, want an unsigned integer", n)}
		}
		return uint64(n), nil
	}
	return 0, f.typeError(i, "an unsigned integer")
}

// Int returns the value of key, which must be an integer of any width and
// signedness that fits in an int64.
func (f *File) Int(key string) (int64, error) {
	kv, i, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	switch v := kv.Value.(type) {
	case int8, int16, int32, int64:
		return toInt64(v), nil
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, &FormatError{File: f.Path, Offset: f.kvOffset[i], Part: "kv", Index: i, Key: key,
				Msg: fmt.Sprintf("value %d overflows int64", v)}
		}
		return int64(v), nil
	}
	return 0, f.typeError(i, "an integer")
}

func toInt64(v any) int64 {
	switch v := v.(type) {
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	}
	panic("model: toInt64 of non-signed type")
}

// Float returns the value of key, which must be an f32 or f64.
func (f *File) Float(key string) (float64, error) {
	kv, i, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	switch v := kv.Value.(type) {
	case float32:
		return float64(v), nil
	case float64:
		return v, nil
	}
	return 0, f.typeError(i, "f32 or f64")
}

// Bool returns the value of key, which must be a bool.
func (f *File) Bool(key string) (bool, error) {
	kv, i, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	if v, ok := kv.Value.(bool); ok {
		return v, nil
	}
	return false, f.typeError(i, "bool")
}

// array returns the typed slice of an array-valued key.
func arrayOf[T any](f *File, key string, want string) ([]T, error) {
	kv, i, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	if a, ok := kv.Value.(Array); ok {
		if v, ok := a.Values.([]T); ok {
			return v, nil
		}
	}
	return nil, f.typeError(i, want)
}

// Strings returns the value of key, which must be an array of strings. The
// slice is the File's own: do not modify it.
func (f *File) Strings(key string) ([]string, error) {
	return arrayOf[string](f, key, "array of str")
}

// Float32s returns the value of key, which must be an array of f32. The
// slice is the File's own: do not modify it.
func (f *File) Float32s(key string) ([]float32, error) {
	return arrayOf[float32](f, key, "array of f32")
}

// Int32s returns the value of key, which must be an array of i32. The slice
// is the File's own: do not modify it.
func (f *File) Int32s(key string) ([]int32, error) {
	return arrayOf[int32](f, key, "array of i32")
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.tIndex[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData returns the ti.Size bytes of a tensor's data. For a file
// mapped by Open it is a read-only slice of the mapping (writing to it
// faults), valid until Close; otherwise it is a new buffer read from the
// io.ReaderAt given to Parse.
func (f *File) TensorData(ti *TensorInfo) ([]byte, error) {
	if ti == nil {
		return nil, fmt.Errorf("%s: TensorData of nil tensor info", f.Path)
	}
	if ti.Size < 0 || ti.Offset > uint64(math.MaxInt64-f.DataOffset) {
		return nil, fmt.Errorf("%s: tensor %q: data offset 0x%x, size %d out of range", f.Path, ti.Name, ti.Offset, ti.Size)
	}
	start := f.DataOffset + int64(ti.Offset)
	if start > f.Size || ti.Size > f.Size-start {
		return nil, fmt.Errorf("%s: tensor %q: data [0x%x, +%d) beyond end of file (size 0x%x)", f.Path, ti.Name, start, ti.Size, f.Size)
	}
	if f.data != nil {
		end := start + ti.Size
		return f.data[start:end:end], nil
	}
	if f.r == nil {
		return nil, fmt.Errorf("%s: tensor %q: file is closed", f.Path, ti.Name)
	}
	if int64(int(ti.Size)) != ti.Size {
		return nil, fmt.Errorf("%s: tensor %q: %d bytes do not fit in memory", f.Path, ti.Name, ti.Size)
	}
	buf := make([]byte, ti.Size)
	n, err := f.r.ReadAt(buf, start)
	if n == len(buf) {
		return buf, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("%s: tensor %q: reading data at offset 0x%x: %w", f.Path, ti.Name, start+int64(n), err)
}
