package reference

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/layerdiff/layerdiff/internal/atomicfile"
)

// The .npy format (numpy's NEP 1, versions 1.0, 2.0 and 3.0):
//
//	offset  size  field
//	0       6     magic "\x93NUMPY"
//	6       1     major version (1, 2 or 3)
//	7       1     minor version (0)
//	8       2|4   HEADER_LEN, little-endian: uint16 for 1.0, uint32 for 2.0/3.0
//	10|12   HLEN  header: a Python dict literal
//	              {'descr': '<f4', 'fortran_order': False, 'shape': (8, 64), }
//	              padded with spaces and ended by '\n' (ASCII; UTF-8 in 3.0)
//	...           data: prod(shape) items of the dtype, C (row-major) order,
//	              or Fortran (column-major) order when 'fortran_order' is True
//
// The reader accepts the dtypes below in either byte order and converts them
// to float32, and returns Fortran-order arrays in C order (transposed on
// reading); the writer writes version 1.0 (2.0 only if the header would not
// fit), C order, little-endian.

const (
	npyMagic = "\x93NUMPY"
	// maxNPYHeader bounds the header we are willing to read (numpy itself
	// refuses headers over 10000 bytes by default).
	maxNPYHeader = 1 << 20
	// maxNPYDims bounds the number of dimensions (numpy's NPY_MAXDIMS is 64).
	maxNPYDims = 64
)

// npyKind is the decoding of one dtype character and size.
type npyKind struct {
	kind byte // 'f', 'i', 'u', 'b'
	size int
}

// NPYHeader is the decoded header of a .npy file.
type NPYHeader struct {
	Major, Minor int
	Descr        string  // dtype, e.g. "<f4"
	Shape        []int64 // numpy (row-major) order; empty for a 0-d array
	// FortranOrder is the header's 'fortran_order': the file stores the
	// items column-major (numpy.asfortranarray, or a transpose saved
	// without a copy). Array.Data is in C order either way.
	FortranOrder bool
	DataOffset   int64 // byte offset of the first item
	kind         npyKind
	order        binary.ByteOrder
}

// Numel is the number of items the header declares.
func (h *NPYHeader) Numel() int64 {
	n := int64(1)
	for _, d := range h.Shape {
		n *= d
	}
	return n
}

// readFullAt reads len(p) bytes at off; io.EOF with a full read is success.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Array is a decoded .npy array: its header and its items converted to
// float32 in C (row-major) order: a Fortran-order file's items are
// transposed into it.
type Array struct {
	NPYHeader
	Data []float32
}

// ReadNPYHeader reads and validates the header of the .npy file at path,
// including that the file holds exactly the data the header declares. It
// does not read the data.
func ReadNPYHeader(path string) (*NPYHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return decodeNPYHeader(f, st.Size(), path)
}

// ReadNPY reads the .npy file at path.
func ReadNPY(path string) (*Array, error) {
	return ReadNPYInto(path, nil)
}

// ReadNPYInto reads the .npy file at path like ReadNPY, storing the values
// of float32 and float16 arrays in buf when its capacity suffices (a
// caller reading many arrays recycles its buffers this way).
func ReadNPYInto(path string, buf []float32) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return decodeNPY(f, st.Size(), path, buf)
}

// DecodeNPY decodes a .npy file of size bytes read from r.
func DecodeNPY(r io.ReaderAt, size int64) (*Array, error) {
	return decodeNPY(r, size, "", nil)
}

// decodeNPY decodes a .npy file; float32 and float16 values go to buf when
// it is large enough.
func decodeNPY(r io.ReaderAt, size int64, name string, buf []float32) (*Array, error) {
	h, err := decodeNPYHeader(r, size, name)
	if err != nil {
		return nil, err
	}
	if h.FortranOrder && !fortranIsC(h.Shape) {
		// Decode the column-major items (the C-order array of the reversed
		// shape) into new memory, then transpose them into buf.
		a, err := decodeNPYData(r, h, name, nil)
		if err != nil {
			return nil, err
		}
		a.Data = reverseAxes(a.Data, h.Shape, floats(buf, h.Numel()))
		return a, nil
	}
	return decodeNPYData(r, h, name, buf)
}

// fortranIsC reports whether a Fortran-order array of this shape has its
// items in C order too: at most one dimension larger than 1.
func fortranIsC(shape []int64) bool {
	n := 0
	for _, d := range shape {
		if d > 1 {
			n++
		}
	}
	return n <= 1
}

// reverseAxes writes into out (len = prod(shape)) the C-order items of the
// array of numpy shape shape whose column-major items are in: item
// (i0, …, ik) of the result is in[i0 + shape[0]·(i1 + shape[1]·(…))].
func reverseAxes(in []float32, shape []int64, out []float32) []float32 {
	nd := len(shape)
	// Strides of the column-major source, per C-order axis.
	stride := make([]int64, nd)
	s := int64(1)
	for k := 0; k < nd; k++ {
		stride[k] = s
		s *= shape[k]
	}
	idx := make([]int64, nd)
	off := int64(0)
	for i := range out {
		out[i] = in[off]
		// Advance the C-order odometer (last axis fastest).
		for k := nd - 1; k >= 0; k-- {
			idx[k]++
			off += stride[k]
			if idx[k] < shape[k] {
				break
			}
			off -= idx[k] * stride[k]
			idx[k] = 0
		}
	}
	return out
}

// decodeNPYData reads the items h declares, in file order.
func decodeNPYData(r io.ReaderAt, h *NPYHeader, name string, buf []float32) (*Array, error) {
	n := h.Numel()
	if h.kind == (npyKind{'f', 4}) && isNativeOrder(h.order) {
		// The common case (every layerdiff dump): read the bytes straight
		// into the float32 slice, no second copy.
		out := floats(buf, n) // size checked by decodeNPYHeader
		var raw []byte
		if n > 0 {
			raw = unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 4*n)
		}
		if err := readFullAt(r, raw, h.DataOffset); err != nil {
			return nil, offsetErr(name, h.DataOffset, "reading %d bytes of data: %v", len(raw), err)
		}
		return &Array{NPYHeader: *h, Data: out}, nil
	}
	raw := make([]byte, n*int64(h.kind.size)) // size checked by decodeNPYHeader
	if err := readFullAt(r, raw, h.DataOffset); err != nil {
		return nil, offsetErr(name, h.DataOffset, "reading %d bytes of data: %v", len(raw), err)
	}
	if h.kind == (npyKind{'f', 2}) {
		// float16 (KV cache views): through a table, not bit by bit.
		tab := halfTable()
		out := floats(buf, n)
		if isNativeOrder(h.order) && n > 0 {
			// Reinterpreted in place: a byte order behind an interface
			// costs a call per value.
			for i, v := range unsafe.Slice((*uint16)(unsafe.Pointer(&raw[0])), n) {
				out[i] = tab[v]
			}
		} else {
			for i := range out {
				out[i] = tab[h.order.Uint16(raw[2*i:])]
			}
		}
		return &Array{NPYHeader: *h, Data: out}, nil
	}
	return &Array{NPYHeader: *h, Data: npyToFloat32(raw, h.kind, h.order)}, nil
}

// floats returns buf[:n] when buf can hold n values, else a new slice.
func floats(buf []float32, n int64) []float32 {
	if int64(cap(buf)) >= n {
		return buf[:n]
	}
	return make([]float32, n)
}

// halfTable is halfToFloat32 of every float16 bit pattern, made on first
// use.
var halfTable = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = halfToFloat32(uint16(i))
	}
	return &t
})

// nativeLittle reports a little-endian host.
var nativeLittle = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// isNativeOrder reports whether data in byte order o can be used in place.
func isNativeOrder(o binary.ByteOrder) bool {
	switch o {
	case binary.NativeEndian:
		return true
	case binary.LittleEndian:
		return nativeLittle
	case binary.BigEndian:
		return !nativeLittle
	}
	return false
}

func decodeNPYHeader(r io.ReaderAt, size int64, name string) (*NPYHeader, error) {
	var pre [12]byte
	if size < 10 {
		return nil, offsetErr(name, 0, "not a .npy file: %d bytes, shorter than the 10-byte preamble", size)
	}
	n := 12
	if size < 12 {
		n = int(size)
	}
	if err := readFullAt(r, pre[:n], 0); err != nil {
		return nil, offsetErr(name, 0, "reading preamble: %v", err)
	}
	if string(pre[:6]) != npyMagic {
		return nil, offsetErr(name, 0, "not a .npy file: magic %q, want %q", pre[:6], npyMagic)
	}
	h := &NPYHeader{Major: int(pre[6]), Minor: int(pre[7])}
	var hlen int64
	switch h.Major {
	case 1:
		hlen = int64(binary.LittleEndian.Uint16(pre[8:10]))
		h.DataOffset = 10
	case 2, 3:
		if size < 12 {
			return nil, offsetErr(name, 8, "file ends inside the version %d.%d header length", h.Major, h.Minor)
		}
		hlen = int64(binary.LittleEndian.Uint32(pre[8:12]))
		h.DataOffset = 12
	default:
		return nil, offsetErr(name, 6, "unsupported .npy version %d.%d (want 1.0, 2.0 or 3.0)", h.Major, h.Minor)
	}
	if hlen > maxNPYHeader {
		return nil, offsetErr(name, 8, "header length %d exceeds the %d-byte limit", hlen, maxNPYHeader)
	}
	if hlen > size-h.DataOffset {
		return nil, offsetErr(name, 8, "header length %d runs past the end of the file (%d bytes)", hlen, size)
	}
	hdr := make([]byte, hlen)
	if err := readFullAt(r, hdr, h.DataOffset); err != nil {
		return nil, offsetErr(name, h.DataOffset, "reading %d-byte header: %v", hlen, err)
	}
	hdrOff := h.DataOffset
	h.DataOffset += hlen
	if h.Major < 3 {
		for i, c := range hdr {
			if c >= 0x80 {
				return nil, offsetErr(name, hdrOff+int64(i), "non-ASCII byte 0x%02x in a version %d.%d header", c, h.Major, h.Minor)
			}
		}
	} else if !utf8.Valid(hdr) {
		return nil, offsetErr(name, hdrOff, "header is not valid UTF-8")
	}
	if err := h.parseDict(hdr); err != nil {
		return nil, offsetErr(name, hdrOff, "header %q: %v", strings.TrimRight(string(hdr), " \n"), err)
	}
	// Size check: prod(shape)*itemsize must be exactly what follows.
	numel := uint64(1)
	for _, d := range h.Shape {
		hi, lo := bits.Mul64(numel, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return nil, offsetErr(name, hdrOff, "shape %v overflows", h.Shape)
		}
		numel = lo
	}
	hi, need := bits.Mul64(numel, uint64(h.kind.size))
	have := size - h.DataOffset
	if hi != 0 || need > math.MaxInt64 || int64(need) != have {
		return nil, offsetErr(name, h.DataOffset, "shape %s of %s needs %d items (%d bytes) but %d bytes of data follow the header",
			pyShape(h.Shape), h.Descr, numel, need, have)
	}
	return h, nil
}

// parseDict decodes the header dict and validates its three keys.
func (h *NPYHeader) parseDict(hdr []byte) error {
	p := &pyParser{s: string(hdr)}
	v, err := p.parseValue()
	if err != nil {
		return err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return fmt.Errorf("unexpected %q after the dict", p.rest())
	}
	d, ok := v.(map[string]any)
	if !ok {
		return errors.New("not a dict")
	}
	descr, ok := d["descr"].(string)
	if !ok {
		if _, isList := d["descr"].([]any); isList {
			return errors.New("structured dtypes are not supported")
		}
		return errors.New("missing or non-string 'descr'")
	}
	fortran, ok := d["fortran_order"].(bool)
	if !ok {
		return errors.New("missing or non-bool 'fortran_order'")
	}
	h.FortranOrder = fortran
	shp, ok := d["shape"].([]any)
	if !ok {
		return errors.New("missing or non-tuple 'shape'")
	}
	if len(shp) > maxNPYDims {
		return fmt.Errorf("%d dimensions (limit %d)", len(shp), maxNPYDims)
	}
	h.Shape = make([]int64, len(shp))
	for i, e := range shp {
		n, ok := e.(int64)
		if !ok || n < 0 {
			return fmt.Errorf("shape element %d is %v, want a non-negative integer", i, e)
		}
		h.Shape[i] = n
	}
	for k := range d {
		if k != "descr" && k != "fortran_order" && k != "shape" {
			return fmt.Errorf("unexpected key %q", k)
		}
	}
	h.Descr = descr
	return h.parseDescr()
}

func (h *NPYHeader) parseDescr() error {
	s := h.Descr
	if len(s) < 3 {
		return fmt.Errorf("unsupported dtype %q", s)
	}
	size, err := strconv.Atoi(s[2:])
	if err != nil {
		return fmt.Errorf("unsupported dtype %q", s)
	}
	k := npyKind{kind: s[1], size: size}
	switch k {
	case npyKind{'f', 2}, npyKind{'f', 4}, npyKind{'f', 8},
		npyKind{'i', 1}, npyKind{'i', 2}, npyKind{'i', 4}, npyKind{'i', 8},
		npyKind{'u', 1}, npyKind{'u', 2}, npyKind{'u', 4}, npyKind{'u', 8},
		npyKind{'b', 1}:
	default:
		return fmt.Errorf("unsupported dtype %q (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)", s)
	}
	switch s[0] {
	case '<':
		h.order = binary.LittleEndian
	case '>':
		h.order = binary.BigEndian
	case '=':
		h.order = binary.NativeEndian
	case '|':
		if size != 1 {
			return fmt.Errorf("dtype %q: byte order '|' on a %d-byte type", s, size)
		}
		h.order = binary.LittleEndian
	default:
		return fmt.Errorf("dtype %q: unknown byte order %q", s, s[0])
	}
	h.kind = k
	return nil
}

// npyToFloat32 converts raw items to float32 (exactly for f2, f4 and
// integers up to 2^24; rounded to nearest for f8 and larger integers).
func npyToFloat32(raw []byte, k npyKind, o binary.ByteOrder) []float32 {
	n := len(raw) / k.size
	out := make([]float32, n)
	for i := range out {
		b := raw[i*k.size:]
		var v float32
		switch k {
		case npyKind{'f', 2}:
			v = halfToFloat32(o.Uint16(b))
		case npyKind{'f', 4}:
			v = math.Float32frombits(o.Uint32(b))
		case npyKind{'f', 8}:
			v = float32(math.Float64frombits(o.Uint64(b)))
		case npyKind{'i', 1}:
			v = float32(int8(b[0]))
		case npyKind{'i', 2}:
			v = float32(int16(o.Uint16(b)))
		case npyKind{'i', 4}:
			v = float32(int32(o.Uint32(b)))
		case npyKind{'i', 8}:
			v = float32(int64(o.Uint64(b)))
		case npyKind{'u', 1}, npyKind{'b', 1}:
			v = float32(b[0])
		case npyKind{'u', 2}:
			v = float32(o.Uint16(b))
		case npyKind{'u', 4}:
			v = float32(o.Uint32(b))
		case npyKind{'u', 8}:
			v = float32(o.Uint64(b))
		}
		out[i] = v
	}
	return out
}

// halfToFloat32 converts IEEE 754 binary16 bits to float32 exactly
// (subnormals, ±0, ±Inf, and NaN with its payload kept), as ggml's
// ggml_compute_fp16_to_fp32 does.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		// ±0 or subnormal: mant * 2^-24, exact in float32.
		f := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(f) | sign)
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	default:
		return math.Float32frombits(sign | (exp+(127-15))<<23 | mant<<13)
	}
}

// pyShape formats a shape the way numpy prints it: "(8, 64)", "(64,)", "()".
func pyShape(shape []int64) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, d := range shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(d, 10))
	}
	if len(shape) == 1 {
		b.WriteByte(',')
	}
	b.WriteByte(')')
	return b.String()
}

// pyParser parses the subset of Python literals found in .npy headers:
// dicts, tuples, lists, strings, integers, True, False and None.
type pyParser struct {
	s     string
	i     int
	depth int
}

func (p *pyParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *pyParser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

func (p *pyParser) parseValue() (any, error) {
	p.skipSpace()
	if p.i >= len(p.s) {
		return nil, errors.New("unexpected end of header")
	}
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 16 {
		return nil, errors.New("header nested too deeply")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		p.i++
		d := map[string]any{}
		for {
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return d, nil
			}
			k, err := p.parseValue()
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("dict key %v is not a string", k)
			}
			p.skipSpace()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, fmt.Errorf("expected ':' after key %q", ks)
			}
			p.i++
			v, err := p.parseValue()
			if err != nil {
				return nil, err
			}
			if _, dup := d[ks]; dup {
				return nil, fmt.Errorf("duplicate key %q", ks)
			}
			d[ks] = v
			if err := p.sep('}'); err != nil {
				return nil, err
			}
		}
	case c == '(' || c == '[':
		closer := byte(')')
		if c == '[' {
			closer = ']'
		}
		p.i++
		var l []any
		for {
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == closer {
				p.i++
				if c == '[' {
					return l, nil // lists mark structured dtypes
				}
				if l == nil {
					l = []any{}
				}
				return l, nil
			}
			v, err := p.parseValue()
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			if err := p.sep(closer); err != nil {
				return nil, err
			}
		}
	case c == '\'' || c == '"':
		j := strings.IndexByte(p.s[p.i+1:], c)
		if j < 0 {
			return nil, errors.New("unterminated string")
		}
		v := p.s[p.i+1 : p.i+1+j]
		if strings.IndexByte(v, '\\') >= 0 {
			return nil, fmt.Errorf("escapes in string %q are not supported", v)
		}
		p.i += j + 2
		return v, nil
	case c == '-' || (c >= '0' && c <= '9'):
		j := p.i + 1
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		n, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad integer %q", p.s[p.i:j])
		}
		if j < len(p.s) && (p.s[j] == 'L' || p.s[j] == 'l') { // Python 2 long
			j++
		}
		p.i = j
		return n, nil
	default:
		for _, w := range []struct {
			word string
			v    any
		}{{"True", true}, {"False", false}, {"None", nil}} {
			if strings.HasPrefix(p.s[p.i:], w.word) {
				p.i += len(w.word)
				return w.v, nil
			}
		}
		return nil, fmt.Errorf("unexpected %q", p.rest())
	}
}

// sep consumes a ',' or leaves the closer for the caller's loop.
func (p *pyParser) sep(closer byte) error {
	p.skipSpace()
	if p.i >= len(p.s) {
		return errors.New("unexpected end of header")
	}
	switch p.s[p.i] {
	case ',':
		p.i++
		return nil
	case closer:
		return nil
	}
	return fmt.Errorf("expected ',' or %q, found %q", closer, p.rest())
}

// npyHeaderBytes builds a version 1.0 preamble+header (2.0 when longer than
// 65535 bytes) padded so that the data starts on a 64-byte boundary.
func npyHeaderBytes(descr string, shape []int64) []byte {
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, pyShape(shape))
	for _, major := range []byte{1, 2} {
		pre := 10
		if major == 2 {
			pre = 12
		}
		total := pre + len(dict) + 1
		pad := (64 - total%64) % 64
		hlen := len(dict) + pad + 1
		if major == 1 && hlen > math.MaxUint16 {
			continue
		}
		var b bytes.Buffer
		b.WriteString(npyMagic)
		b.WriteByte(major)
		b.WriteByte(0)
		if major == 1 {
			binary.Write(&b, binary.LittleEndian, uint16(hlen))
		} else {
			binary.Write(&b, binary.LittleEndian, uint32(hlen))
		}
		b.WriteString(dict)
		b.WriteString(strings.Repeat(" ", pad))
		b.WriteByte('\n')
		return b.Bytes()
	}
	panic("unreachable")
}

// EncodeNPY writes a .npy file: the header for descr and shape (numpy order)
// followed by raw, which must hold exactly prod(shape) items of descr.
func EncodeNPY(w io.Writer, descr string, shape []int64, raw []byte) error {
	h := NPYHeader{Descr: descr}
	if err := h.parseDescr(); err != nil {
		return err
	}
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Errorf("npy: shape %v overflows", shape)
		}
		n = int64(lo)
	}
	if n*int64(h.kind.size) != int64(len(raw)) {
		return fmt.Errorf("npy: shape %s of %s needs %d bytes, got %d", pyShape(shape), descr, n*int64(h.kind.size), len(raw))
	}
	if _, err := w.Write(npyHeaderBytes(descr, shape)); err != nil {
		return err
	}
	_, err := w.Write(raw)
	return err
}

// WriteNPYFloat32 atomically writes data as a little-endian float32 ("<f4")
// .npy file with the given numpy-order shape.
func WriteNPYFloat32(path string, shape []int64, data []float32) error {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return writeNPYFile(path, "<f4", shape, raw)
}

// WriteNPYFloat16 atomically writes IEEE binary16 values, given as their raw
// bits, as a "<f2" .npy file with the given numpy-order shape.
func WriteNPYFloat16(path string, shape []int64, bits []uint16) error {
	raw := make([]byte, 2*len(bits))
	for i, v := range bits {
		binary.LittleEndian.PutUint16(raw[2*i:], v)
	}
	return writeNPYFile(path, "<f2", shape, raw)
}

// WriteNPYInt32 atomically writes data as a little-endian int32 ("<i4")
// .npy file with the given numpy-order shape.
func WriteNPYInt32(path string, shape []int64, data []int32) error {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
	}
	return writeNPYFile(path, "<i4", shape, raw)
}

// WriteNPY atomically writes raw, prod(shape) items of dtype descr (e.g.
// "<f4") already in file order, as a .npy file. The dumper uses it to store
// ggml data without converting it.
func WriteNPY(path, descr string, shape []int64, raw []byte) error {
	return writeNPYFile(path, descr, shape, raw)
}

func writeNPYFile(path, descr string, shape []int64, raw []byte) error {
	return writeFileAtomic(path, func(w io.Writer) error {
		return EncodeNPY(w, descr, shape, raw)
	})
}

// writeFileAtomic writes path through a synced temporary file and a rename.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	return atomicfile.Write(path, write)
}
