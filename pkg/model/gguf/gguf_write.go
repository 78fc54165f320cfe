package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/layerdiff/layerdiff/internal/atomicfile"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// WriteTensor is one tensor to write: its info and its data, in ggml layout
// (ne[0] fastest, quantized rows as whole blocks), either in memory (Data)
// or produced while the file is written (WriteData).
type WriteTensor struct {
	Name string
	Ne   []int64 // ggml order, 1 to 4 dimensions
	Type quant.Type
	// Data is the tensor's bytes, exactly its byte size for Ne and Type.
	Data []byte
	// WriteData, used when Data is nil, writes the tensor's bytes to w: Write
	// calls it once, in file order, after every earlier tensor's data, so
	// that a file far larger than memory can be written from data produced
	// on the fly. It must write exactly the tensor's byte size; w refuses a
	// write past it, and Write fails, naming the tensor, when WriteData
	// wrote more, less or returned an error. Setting both Data and
	// WriteData is an error.
	WriteData func(w io.Writer) error
}

// NewKV returns the KV for a Go value, deriving its ValueType: uint8, int8,
// uint16, int16, uint32, int32, float32, bool, string, uint64, int64 and
// float64 give scalars; slices of those, []Array and Array give arrays. It
// panics on any other type (a programming error: GGUF has no plain int).
func NewKV(key string, value any) KV {
	if t, ok := scalarType(value); ok {
		return KV{Key: key, Type: t, Value: value}
	}
	if a, ok := value.(Array); ok {
		return KV{Key: key, Type: ValueArray, Value: a}
	}
	if t, ok := sliceType(value); ok {
		return KV{Key: key, Type: ValueArray, Value: Array{Elem: t, Values: value}}
	}
	panic(fmt.Sprintf("model.NewKV(%q): unsupported value type %T", key, value))
}

// scalarType is the ValueType of a Go scalar.
func scalarType(v any) (ValueType, bool) {
	switch v.(type) {
	case uint8:
		return ValueUint8, true
	case int8:
		return ValueInt8, true
	case uint16:
		return ValueUint16, true
	case int16:
		return ValueInt16, true
	case uint32:
		return ValueUint32, true
	case int32:
		return ValueInt32, true
	case float32:
		return ValueFloat32, true
	case bool:
		return ValueBool, true
	case string:
		return ValueString, true
	case uint64:
		return ValueUint64, true
	case int64:
		return ValueInt64, true
	case float64:
		return ValueFloat64, true
	}
	return 0, false
}

// sliceType is the element ValueType of a Go slice allowed in Array.Values.
func sliceType(v any) (ValueType, bool) {
	switch v.(type) {
	case []uint8:
		return ValueUint8, true
	case []int8:
		return ValueInt8, true
	case []uint16:
		return ValueUint16, true
	case []int16:
		return ValueInt16, true
	case []uint32:
		return ValueUint32, true
	case []int32:
		return ValueInt32, true
	case []float32:
		return ValueFloat32, true
	case []bool:
		return ValueBool, true
	case []string:
		return ValueString, true
	case []uint64:
		return ValueUint64, true
	case []int64:
		return ValueInt64, true
	case []float64:
		return ValueFloat64, true
	case []Array:
		return ValueArray, true
	}
	return 0, false
}

// Write writes a GGUF version 3 file laid out as ggml's gguf_write_to_file
// does: header, kvs in order, tensor infos in order, zero padding to the
// alignment, then each tensor's data padded with zeros to the alignment.
//
// alignment 0 means: general.alignment from kvs, or 32 when absent. A
// non-zero alignment must agree with general.alignment when kvs has it;
// when kvs lacks it and alignment is not 32, a general.alignment u32 pair is
// appended to the metadata written, so that readers find the alignment.
//
// Everything is validated before the first byte is written: keys non-empty
// and unique, each KV's Value of the Go type its Type calls for,
// general.alignment a u32 power of two, tensor names unique and shorter than
// 64 bytes, 1 to 4 non-negative dimensions, a known type, rows a whole number
// of blocks and len(Data) equal to the tensor's byte size. Only the length
// of data produced by WriteData is checked as it is written, so w may then
// hold a partial file when Write fails: WriteFile never leaves one behind.
// Arrays of arrays are written as the GGUF spec describes them, but ggml
// cannot read them.
func Write(w io.Writer, kvs []KV, tensors []WriteTensor, alignment uint64) error {
	kvs, align, err := resolveAlignment(kvs, alignment)
	if err != nil {
		return err
	}
	head, sizes, err := encodeMeta(kvs, tensors, align)
	if err != nil {
		return err
	}
	total := uint64(len(head))
	for _, size := range sizes {
		total += pad(uint64(size), align)
	}
	var bw flushWriter
	if aw, ok := w.(*asyncWriter); ok {
		bw = aw // already buffered
	} else {
		bw = bufio.NewWriterSize(w, int(min(total, 1<<20)))
	}
	if _, err := bw.Write(head); err != nil {
		return err
	}
	var zeros [256]byte
	for i, t := range tensors {
		size := sizes[i]
		if t.Data == nil && t.WriteData != nil {
			if err := writeData(bw, t, size); err != nil {
				return fmt.Errorf("tensor %d %q: %w", i, t.Name, err)
			}
		} else if _, err := bw.Write(t.Data); err != nil {
			return err
		}
		for p := pad(uint64(size), align) - uint64(size); p > 0; {
			n := min(p, uint64(len(zeros)))
			if _, err := bw.Write(zeros[:n]); err != nil {
				return err
			}
			p -= n
		}
	}
	return bw.Flush()
}

// writeData has t.WriteData write t's size bytes of data to w.
func writeData(w io.Writer, t WriteTensor, size int64) error {
	lw := &limitWriter{w: w, left: size}
	err := t.WriteData(lw)
	switch {
	case lw.over:
		return fmt.Errorf("WriteData wrote more than the %d bytes of shape %v of type %s", size, t.Ne, t.Type)
	case err != nil:
		return fmt.Errorf("WriteData: %w", err)
	case lw.left != 0:
		return fmt.Errorf("WriteData wrote %d bytes, want %d for shape %v of type %s", size-lw.left, size, t.Ne, t.Type)
	}
	return nil
}

// errDataTooLong is what a limitWriter returns for a write past its limit.
var errDataTooLong = errors.New("tensor data longer than its shape and type allow")

// limitWriter passes at most left bytes on to w. A write that would go past
// the limit writes nothing, returns errDataTooLong and sets over.
type limitWriter struct {
	w    io.Writer
	left int64
	over bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		l.over = true
		return 0, errDataTooLong
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}

// flushWriter is the buffered writer Write writes through.
type flushWriter interface {
	io.Writer
	Flush() error
}

// asyncWriter is a buffered writer whose full buffers a second goroutine
// writes to the underlying writer, in order, so that producing data (such
// as drawing a fixture's random values with WriteData) overlaps the write
// system calls and the waits for the disk: for a file of many gigabytes
// those cost as much time as producing it.
//
// Flush (or Close) must be called once writing is over: it writes what is
// buffered, ends the goroutine and returns the first write error. After a
// write error Write fails without buffering more.
type asyncWriter struct {
	buf    []byte        // being filled; len(buf) < cap(buf) between calls
	full   chan []byte   // filled buffers, to the goroutine
	free   chan []byte   // written buffers, back from it
	failed chan struct{} // closed by the goroutine after setting err
	done   chan struct{} // closed when the goroutine has ended
	err    error         // the first write error
	closed bool
}

// newAsyncWriter returns an asyncWriter writing to w through n buffers of
// size bytes each (n >= 2).
func newAsyncWriter(w io.Writer, size, n int) *asyncWriter {
	a := &asyncWriter{
		buf:    make([]byte, 0, size),
		full:   make(chan []byte, n),
		free:   make(chan []byte, n),
		failed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	for range n - 1 {
		a.free <- make([]byte, 0, size)
	}
	go func() {
		defer close(a.done)
		for b := range a.full {
			if a.err == nil {
				if _, err := w.Write(b); err != nil {
					a.err = err
					close(a.failed)
				}
			}
			a.free <- b[:0]
		}
	}()
	return a
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if a.closed {
		return 0, errors.New("model: write to a closed asyncWriter")
	}
	n := 0
	for len(p) > 0 {
		select {
		case <-a.failed:
			return n, a.err
		default:
		}
		k := copy(a.buf[len(a.buf):cap(a.buf)], p)
		a.buf, p, n = a.buf[:len(a.buf)+k], p[k:], n+k
		if len(a.buf) == cap(a.buf) {
			a.full <- a.buf
			a.buf = <-a.free
		}
	}
	return n, nil
}

// Flush is Close: Write calls it once, at the end.
func (a *asyncWriter) Flush() error { return a.Close() }

// Close writes what is buffered, waits until everything is written, ends
// the goroutine and returns the first write error. Later calls return the
// same error.
func (a *asyncWriter) Close() error {
	if !a.closed {
		a.closed = true
		if len(a.buf) > 0 {
			a.full <- a.buf
		}
		close(a.full)
	}
	<-a.done
	return a.err
}

// WriteFile writes the GGUF file of Write to path atomically: into a
// temporary file in the same directory, synced, then renamed over path, so
// that path holds either its old content or the complete new file. The
// file is written by a second goroutine while the data is produced.
func WriteFile(path string, kvs []KV, tensors []WriteTensor, alignment uint64) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		aw := newAsyncWriter(w, 1<<20, 8)
		err := Write(aw, kvs, tensors, alignment)
		if cerr := aw.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// resolveAlignment applies Write's alignment rules.
func resolveAlignment(kvs []KV, alignment uint64) ([]KV, uint64, error) {
	align, have := uint64(DefaultAlignment), false
	for i, kv := range kvs {
		if kv.Key != KeyAlignment {
			continue
		}
		v, ok := kv.Value.(uint32)
		if !ok || kv.Type != ValueUint32 {
			return nil, 0, fmt.Errorf("kv %d %q: alignment must be a u32, not %s (%T)", i, kv.Key, kv.Type, kv.Value)
		}
		align, have = uint64(v), true
	}
	if alignment != 0 {
		if have && align != alignment {
			return nil, 0, fmt.Errorf("alignment %d disagrees with %s = %d", alignment, KeyAlignment, align)
		}
		if alignment > math.MaxUint32 {
			return nil, 0, fmt.Errorf("alignment %d does not fit in a u32", alignment)
		}
		if !have && alignment != DefaultAlignment {
			kvs = append(kvs[:len(kvs):len(kvs)], NewKV(KeyAlignment, uint32(alignment)))
		}
		align = alignment
	}
	if align == 0 || align&(align-1) != 0 {
		return nil, 0, fmt.Errorf("alignment %d is not a power of two", align)
	}
	return kvs, align, nil
}

// encodeMeta validates kvs and tensors and returns the header, metadata,
// tensor infos and padding (every byte before the data section), and each
// tensor's data size in bytes.
func encodeMeta(kvs []KV, tensors []WriteTensor, align uint64) ([]byte, []int64, error) {
	le := binary.LittleEndian
	b := []byte(Magic)
	b = le.AppendUint32(b, 3)
	b = le.AppendUint64(b, uint64(len(tensors)))
	b = le.AppendUint64(b, uint64(len(kvs)))

	seen := make(map[string]int, len(kvs))
	for i, kv := range kvs {
		if kv.Key == "" {
			return nil, nil, fmt.Errorf("kv %d: empty key", i)
		}
		if j, dup := seen[kv.Key]; dup {
			return nil, nil, fmt.Errorf("kv %d %q: duplicate key (first at kv %d)", i, kv.Key, j)
		}
		seen[kv.Key] = i
		b = appendString(b, kv.Key)
		b = le.AppendUint32(b, uint32(kv.Type))
		var err error
		if b, err = appendValue(b, kv.Type, kv.Value, 0); err != nil {
			return nil, nil, fmt.Errorf("kv %d %q: %w", i, kv.Key, err)
		}
	}

	names := make(map[string]int, len(tensors))
	sizes := make([]int64, len(tensors))
	var offset uint64
	for i, t := range tensors {
		size, err := checkTensor(t)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %d %q: %w", i, t.Name, err)
		}
		if j, dup := names[t.Name]; dup {
			return nil, nil, fmt.Errorf("tensor %d %q: duplicate tensor name (first at tensor %d)", i, t.Name, j)
		}
		names[t.Name] = i
		sizes[i] = size
		b = appendString(b, t.Name)
		b = le.AppendUint32(b, uint32(len(t.Ne)))
		for _, n := range t.Ne {
			b = le.AppendUint64(b, uint64(n))
		}
		b = le.AppendUint32(b, uint32(t.Type))
		b = le.AppendUint64(b, offset)
		offset = pad(offset+uint64(size), align)
	}
	for uint64(len(b))%align != 0 {
		b = append(b, 0)
	}
	return b, sizes, nil
}

// checkTensor validates a tensor to write and returns its byte size.
func checkTensor(t WriteTensor) (int64, error) {
	if len(t.Name) > MaxTensorNameLen {
		return 0, fmt.Errorf("name is %d bytes, longer than ggml's limit of %d", len(t.Name), MaxTensorNameLen)
	}
	size, _, msg := tensorSize(t.Type, t.Ne)
	if msg != "" {
		return 0, errors.New(msg)
	}
	switch {
	case t.Data != nil && t.WriteData != nil:
		return 0, errors.New("both Data and WriteData are set")
	case t.WriteData != nil:
		// Its length is checked as it is written.
	case int64(len(t.Data)) != size:
		return 0, fmt.Errorf("%d bytes of data, want %d for shape %v of type %s", len(t.Data), size, t.Ne, t.Type)
	}
	return size, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// appendValue encodes v, which must have the Go type that t calls for.
func appendValue(b []byte, t ValueType, v any, depth int) ([]byte, error) {
	le := binary.LittleEndian
	if t == ValueArray {
		a, ok := v.(Array)
		if !ok {
			return nil, fmt.Errorf("type arr needs a model.Array value, not %T", v)
		}
		return appendArray(b, a, depth+1)
	}
	if got, ok := scalarType(v); !ok || got != t {
		return nil, fmt.Errorf("type %s needs a Go %s value, not %T", t, goTypeName(t), v)
	}
	switch v := v.(type) {
	case uint8:
		b = append(b, v)
	case int8:
		b = append(b, uint8(v))
	case bool:
		b = append(b, boolByte(v))
	case uint16:
		b = le.AppendUint16(b, v)
	case int16:
		b = le.AppendUint16(b, uint16(v))
	case uint32:
		b = le.AppendUint32(b, v)
	case int32:
		b = le.AppendUint32(b, uint32(v))
	case float32:
		b = le.AppendUint32(b, math.Float32bits(v))
	case uint64:
		b = le.AppendUint64(b, v)
	case int64:
		b = le.AppendUint64(b, uint64(v))
	case float64:
		b = le.AppendUint64(b, math.Float64bits(v))
	case string:
		b = appendString(b, v)
	}
	return b, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// appendArray encodes an array: element type, count, elements.
func appendArray(b []byte, a Array, depth int) ([]byte, error) {
	if depth > maxArrayDepth {
		return nil, fmt.Errorf("arrays nested deeper than %d", maxArrayDepth)
	}
	if got, ok := sliceType(a.Values); !ok || got != a.Elem {
		return nil, fmt.Errorf("array of %s needs a []%s, not %T", a.Elem, goTypeName(a.Elem), a.Values)
	}
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(a.Elem))
	b = le.AppendUint64(b, uint64(a.Len()))
	switch v := a.Values.(type) {
	case []uint8:
		b = append(b, v...)
	case []int8:
		for _, x := range v {
			b = append(b, uint8(x))
		}
	case []bool:
		for _, x := range v {
			b = append(b, boolByte(x))
		}
	case []uint16:
		for _, x := range v {
			b = le.AppendUint16(b, x)
		}
	case []int16:
		for _, x := range v {
			b = le.AppendUint16(b, uint16(x))
		}
	case []uint32:
		for _, x := range v {
			b = le.AppendUint32(b, x)
		}
	case []int32:
		for _, x := range v {
			b = le.AppendUint32(b, uint32(x))
		}
	case []float32:
		for _, x := range v {
			b = le.AppendUint32(b, math.Float32bits(x))
		}
	case []uint64:
		for _, x := range v {
			b = le.AppendUint64(b, x)
		}
	case []int64:
		for _, x := range v {
			b = le.AppendUint64(b, uint64(x))
		}
	case []float64:
		for _, x := range v {
			b = le.AppendUint64(b, math.Float64bits(x))
		}
	case []string:
		for _, x := range v {
			b = appendString(b, x)
		}
	case []Array:
		for i, x := range v {
			var err error
			if b, err = appendArray(b, x, depth+1); err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
		}
	}
	return b, nil
}

// goTypeName names the Go type that holds values of type t.
func goTypeName(t ValueType) string {
	switch t {
	case ValueUint8:
		return "uint8"
	case ValueInt8:
		return "int8"
	case ValueUint16:
		return "uint16"
	case ValueInt16:
		return "int16"
	case ValueUint32:
		return "uint32"
	case ValueInt32:
		return "int32"
	case ValueFloat32:
		return "float32"
	case ValueBool:
		return "bool"
	case ValueString:
		return "string"
	case ValueArray:
		return "model.Array"
	case ValueUint64:
		return "uint64"
	case ValueInt64:
		return "int64"
	case ValueFloat64:
		return "float64"
	}
	return t.String()
}
