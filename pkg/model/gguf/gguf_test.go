package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/layerdiff/layerdiff/internal/testshared"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// rawFile assembles GGUF bytes field by field, so tests can write what the
// Writer refuses to, and records the offset of named places.
type rawFile struct {
	b     []byte
	marks map[string]int
}

func (r *rawFile) mark(name string) { r.marks[name] = len(r.b) }
func (r *rawFile) u32(v uint32)     { r.b = binary.LittleEndian.AppendUint32(r.b, v) }
func (r *rawFile) u64(v uint64)     { r.b = binary.LittleEndian.AppendUint64(r.b, v) }
func (r *rawFile) str(s string)     { r.u64(uint64(len(s))); r.b = append(r.b, s...) }

// rawKV is a metadata pair: key, type and a function writing the value.
type rawKV struct {
	key string
	typ uint32
	val func(r *rawFile)
}

// rawTensor is a tensor info; offset -1 is computed, dataLen -1 is computed
// from the shape (for valid shapes).
type rawTensor struct {
	name    string
	ne      []uint64
	typ     uint32
	offset  int64
	dataLen int
}

// spec describes a GGUF file for rawFile; the zero values of nTensors and
// nKV mean the real counts.
type spec struct {
	magic     string
	version   uint32
	nTensors  *uint64
	nKV       *uint64
	kvs       []rawKV
	tensors   []rawTensor
	dataAlign int
}

func u64p(v uint64) *uint64 { return &v }

func strVal(s string) func(*rawFile) { return func(r *rawFile) { r.str(s) } }
func u32Val(v uint32) func(*rawFile) { return func(r *rawFile) { r.u32(v) } }

// sampleSpec is a small valid file: three KVs (a string, the alignment, an
// array of strings, an array of arrays) and two tensors, f32 {4, 2} and
// q8_0 {32, 1}.
func sampleSpec() *spec {
	return &spec{
		magic:   "GGUF",
		version: 3,
		kvs: []rawKV{
			{"general.architecture", 8, strVal("llama")},
			{"general.alignment", 4, u32Val(32)},
			{"test.tokens", 9, func(r *rawFile) {
				r.u32(8)
				r.u64(3)
				r.mark("tokens.0")
				r.str("a")
				r.mark("tokens.1")
				r.str("bc")
				r.str("")
			}},
			{"test.nested", 9, func(r *rawFile) {
				r.u32(9)
				r.u64(2)
				r.u32(5)
				r.u64(1)
				r.u32(uint32(0xffffffff))
				r.u32(8)
				r.u64(0)
			}},
		},
		tensors: []rawTensor{
			{"a", []uint64{4, 2}, uint32(quant.F32), -1, -1},
			{"b", []uint64{32, 1}, uint32(quant.Q8_0), -1, -1},
		},
		dataAlign: 32,
	}
}

// build returns the file's bytes and the offsets of its places: "n_tensors",
// "n_kv", "kvI", "kvI.value", "tensorI", "tensorI.ne", "tensorI.type",
// "tensorI.offset", "padding", "data", "dataI", "end" (end of the last
// tensor's data, before its padding).
func (s *spec) build() ([]byte, map[string]int) {
	r := &rawFile{marks: map[string]int{}}
	r.b = append(r.b, s.magic...)
	r.u32(s.version)
	r.mark("n_tensors")
	if s.nTensors != nil {
		r.u64(*s.nTensors)
	} else {
		r.u64(uint64(len(s.tensors)))
	}
	r.mark("n_kv")
	if s.nKV != nil {
		r.u64(*s.nKV)
	} else {
		r.u64(uint64(len(s.kvs)))
	}
	for i, kv := range s.kvs {
		r.mark(fmt.Sprintf("kv%d", i))
		r.str(kv.key)
		r.u32(kv.typ)
		r.mark(fmt.Sprintf("kv%d.value", i))
		kv.val(r)
	}
	align := uint64(s.dataAlign)
	sizes := make([]int, len(s.tensors))
	var off uint64
	for i, t := range s.tensors {
		r.mark(fmt.Sprintf("tensor%d", i))
		r.str(t.name)
		r.u32(uint32(len(t.ne)))
		r.mark(fmt.Sprintf("tensor%d.ne", i))
		for _, n := range t.ne {
			r.u64(n)
		}
		r.mark(fmt.Sprintf("tensor%d.type", i))
		r.u32(t.typ)
		r.mark(fmt.Sprintf("tensor%d.offset", i))
		if t.offset >= 0 {
			r.u64(uint64(t.offset))
		} else {
			r.u64(off)
		}
		sizes[i] = t.dataLen
		if sizes[i] < 0 {
			row, err := quant.Type(t.typ).RowBytes(int64(t.ne[0]))
			if err != nil {
				panic(err)
			}
			n := row
			for _, d := range t.ne[1:] {
				n *= int64(d)
			}
			sizes[i] = int(n)
		}
		off = pad(off+uint64(sizes[i]), align)
	}
	r.mark("padding")
	for uint64(len(r.b))%align != 0 {
		r.b = append(r.b, 0)
	}
	r.mark("data")
	for i := range s.tensors {
		r.mark(fmt.Sprintf("data%d", i))
		for j := 0; j < sizes[i]; j++ {
			r.b = append(r.b, byte(i*31+j))
		}
		r.mark("end")
		for uint64(len(r.b))%align != 0 {
			r.b = append(r.b, 0)
		}
	}
	return r.b, r.marks
}

func (s *spec) bytes() []byte { b, _ := s.build(); return b }

// with returns a copy of the sample spec changed by f.
func with(f func(s *spec)) []byte {
	s := sampleSpec()
	f(s)
	return s.bytes()
}

// cutAt returns the sample file cut at the named place plus delta.
func cutAt(place string, delta int) []byte {
	b, m := sampleSpec().build()
	at, ok := m[place]
	if !ok {
		panic("no mark " + place)
	}
	return b[:at+delta]
}

// patchU64 returns the sample file with the u64 at place overwritten.
func patchU64(place string, v uint64) []byte {
	b, m := sampleSpec().build()
	binary.LittleEndian.PutUint64(b[m[place]:], v)
	return b
}

func parseBytes(b []byte) (*File, error) {
	return Parse(bytes.NewReader(b), int64(len(b)), "t.gguf")
}

func TestParseSample(t *testing.T) {
	b, m := sampleSpec().build()
	f, err := parseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 32 || f.Size != int64(len(b)) || f.DataOffset != int64(m["data"]) {
		t.Errorf("header: version %d alignment %d size %d data offset %d; want 3 32 %d %d",
			f.Version, f.Alignment, f.Size, f.DataOffset, len(b), m["data"])
	}
	wantKVs := []KV{
		{"general.architecture", ValueString, "llama"},
		{"general.alignment", ValueUint32, uint32(32)},
		{"test.tokens", ValueArray, Array{ValueString, []string{"a", "bc", ""}}},
		{"test.nested", ValueArray, Array{ValueArray, []Array{{ValueInt32, []int32{-1}}, {ValueString, []string{}}}}},
	}
	if !reflect.DeepEqual(f.KVs, wantKVs) {
		t.Errorf("KVs:\n got %#v\nwant %#v", f.KVs, wantKVs)
	}
	if len(f.Tensors) != 2 {
		t.Fatalf("%d tensors, want 2", len(f.Tensors))
	}
	for i, want := range []TensorInfo{
		{Name: "a", Ne: []int64{4, 2}, Type: quant.F32, Offset: 0, Size: 32, Index: 0},
		{Name: "b", Ne: []int64{32, 1}, Type: quant.Q8_0, Offset: 32, Size: 34, Index: 1},
	} {
		got, ok := f.Tensor(want.Name)
		if !ok {
			t.Fatalf("tensor %q not found", want.Name)
		}
		got2 := *got
		got2.infoOffset = 0
		if !reflect.DeepEqual(got2, want) {
			t.Errorf("tensor %d: got %+v, want %+v", i, got2, want)
		}
		data, err := f.TensorData(got)
		if err != nil {
			t.Fatal(err)
		}
		start := m[fmt.Sprintf("data%d", i)]
		if !bytes.Equal(data, b[start:start+int(want.Size)]) {
			t.Errorf("tensor %q data differs", want.Name)
		}
	}
	if _, ok := f.Tensor("c"); ok {
		t.Error(`Tensor("c") found`)
	}
	if f.Arch() != "llama" {
		t.Errorf("Arch() = %q", f.Arch())
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

// TestParseErrors has one row per kind of bad input; each asserts the
// message names the file and the place (part, index, key or tensor name,
// offset).
func TestParseErrors(t *testing.T) {
	_, m := sampleSpec().build()
	at := func(place string, delta int) string { return fmt.Sprintf("offset 0x%x: ", m[place]+delta) }
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{"empty file", nil, []string{"t.gguf: offset 0x0: header: empty file"}},
		{"short magic", []byte("GG"), []string{"header: unexpected end of file reading magic"}},
		{"wrong magic", with(func(s *spec) { s.magic = "GGML" }), []string{`offset 0x0: header: bad magic "GGML"`}},
		{"version 0", with(func(s *spec) { s.version = 0 }), []string{"offset 0x4: header: invalid GGUF version 0"}},
		{"version 1", with(func(s *spec) { s.version = 1 }), []string{"offset 0x4: header: GGUF version 1 is not supported"}},
		{"version 4", with(func(s *spec) { s.version = 4 }), []string{"offset 0x4: header: unsupported GGUF version 4"}},
		{"big-endian", with(func(s *spec) { s.version = 0x03000000 }), []string{"offset 0x4: header: version 0x03000000: a big-endian file (version 3 byte-swapped)?"}},
		{"truncated version", cutAt("n_tensors", -1), []string{"offset 0x4: header: unexpected end of file reading version"}},
		{"truncated n_tensors", cutAt("n_tensors", 3), []string{"offset 0x8: header: unexpected end of file reading n_tensors"}},
		{"truncated n_kv", cutAt("n_kv", 7), []string{"offset 0x10: header: unexpected end of file reading n_kv"}},
		{"n_tensors 2^62", patchU64("n_tensors", 1<<62), []string{`tensor 2: n_dims 0, want 1 to 4 (n_tensors 4611686018427387904 at offset 0x8 exceeds what the 189 bytes after the metadata can hold)`}},
		{"n_kv 2^62", patchU64("n_kv", 1<<62), []string{"kv 5: key length", "(n_kv 4611686018427387904 at offset 0x10 exceeds what the 392 bytes after it can hold)"}},
		{"n_tensors negative", patchU64("n_tensors", 1<<63), []string{"tensor 2: ", "(n_tensors 9223372036854775808 at offset 0x8 exceeds"}},
		{"n_kv too many", patchU64("n_kv", 5), []string{"tensor 0: name length 562949953421312 exceeds"}},
		{"truncated kv 0 key length", cutAt("kv0", 4), []string{at("kv0", 0) + "kv 0: unexpected end of file reading key length"}},
		{"truncated kv 0 key", cutAt("kv0", 10), []string{at("kv0", 0) + "kv 0: key length 20 exceeds what the 2 bytes left"}},
		{"truncated kv 0 type", cutAt("kv0.value", -2), []string{`kv 0 "general.architecture": unexpected end of file reading value type`}},
		{"truncated kv 0 value", cutAt("kv0.value", 9), []string{`kv 0 "general.architecture": string length 5 exceeds`}},
		{"truncated kv 1 value", cutAt("kv1.value", 2), []string{at("kv1.value", 0) + `kv 1 "general.alignment": unexpected end of file reading u32 value`}},
		{"truncated kv 2 array type", cutAt("kv2.value", 1), []string{`kv 2 "test.tokens": unexpected end of file reading array element type`}},
		{"truncated kv 2 array length", cutAt("kv2.value", 6), []string{`kv 2 "test.tokens": unexpected end of file reading array length`}},
		{"truncated kv 2 element 1", cutAt("tokens.1", 9), []string{at("tokens.1", 0) + `kv 2 "test.tokens": array element 1 length 2 exceeds`}},
		{"truncated kv 3 inner array", cutAt("kv3.value", 26), []string{at("kv3.value", 16) + `kv 3 "test.nested": array length 1 exceeds what the 2 bytes left`}},
		{"key length 2^63", patchU64("kv0", 1<<63), []string{at("kv0", 0) + "kv 0: key length 9223372036854775808 exceeds"}},
		{"string length 2^63", patchU64("kv0.value", 1<<63), []string{at("kv0.value", 0) + `kv 0 "general.architecture": string length 9223372036854775808 exceeds`}},
		{"array length 2^63", patchU64("tokens.0", 1<<63), []string{`kv 2 "test.tokens": array element 0 length 9223372036854775808 exceeds`}},
		{"string array length 2^63", with(func(s *spec) {
			s.kvs[2].val = func(r *rawFile) { r.u32(8); r.u64(1 << 63) }
		}), []string{`kv 2 "test.tokens": array element 1 length`, `(array length 9223372036854775808 at offset 0x81 exceeds what the 247 bytes after it can hold)`}},
		{"f32 array length 2^62", with(func(s *spec) {
			s.kvs[2].val = func(r *rawFile) { r.u32(6); r.u64(1 << 62) }
		}), []string{`kv 2 "test.tokens": array length 4611686018427387904 exceeds`}},
		{"empty key", with(func(s *spec) { s.kvs[0].key = "" }), []string{at("kv0", 0) + "kv 0: empty key"}},
		{"duplicate key", with(func(s *spec) { s.kvs[1].key = "general.architecture"; s.kvs[1].typ = 8; s.kvs[1].val = strVal("x") }),
			[]string{at("kv1", 0) + `kv 1 "general.architecture": duplicate key (first at kv 0)`}},
		{"invalid value type", with(func(s *spec) { s.kvs[0].typ = 13 }), []string{`kv 0 "general.architecture": invalid value type 13`}},
		{"invalid array element type", with(func(s *spec) { s.kvs[2].val = func(r *rawFile) { r.u32(0xffffffff); r.u64(0) } }),
			[]string{`kv 2 "test.tokens": invalid array element type -1`}},
		{"arrays nested too deep", with(func(s *spec) {
			s.kvs[3].val = func(r *rawFile) {
				for range 20 {
					r.u32(9)
					r.u64(1)
				}
			}
		}), []string{`kv 3 "test.nested": arrays nested deeper than 16`}},
		{"alignment 0", with(func(s *spec) { s.kvs[1].val = u32Val(0) }), []string{at("kv1", 0) + `kv 1 "general.alignment": alignment 0 is not a power of two`}},
		{"alignment 3", with(func(s *spec) { s.kvs[1].val = u32Val(3) }), []string{`kv 1 "general.alignment": alignment 3 is not a power of two`}},
		{"alignment not u32", with(func(s *spec) { s.kvs[1].typ = 10; s.kvs[1].val = func(r *rawFile) { r.u64(32) } }),
			[]string{`kv 1 "general.alignment": alignment has type u64, want u32`}},
		{"truncated tensor 0 name", cutAt("tensor0", 8), []string{at("tensor0", 0) + "tensor 0: name length 1 exceeds what the 0 bytes left"}},
		{"truncated tensor 0 n_dims", cutAt("tensor0.ne", -1), []string{`tensor 0 "a": unexpected end of file reading n_dims`}},
		{"truncated tensor 1 ne", cutAt("tensor1.ne", 12), []string{at("tensor1.ne", 8) + `tensor 1 "b": unexpected end of file reading ne[1]`}},
		{"truncated tensor 1 type", cutAt("tensor1.type", 3), []string{`tensor 1 "b": unexpected end of file reading type`}},
		{"truncated tensor 1 offset", cutAt("tensor1.offset", 7), []string{at("tensor1.offset", 0) + `tensor 1 "b": unexpected end of file reading data offset`}},
		{"truncated padding", cutAt("padding", 1), []string{at("tensor0", 0) + `tensor 0 "a": data [0x`, "beyond end of file"}},
		{"truncated data 0", cutAt("data0", 20), []string{`tensor 0 "a": data [0x`, "beyond end of file"}},
		{"truncated data 1", cutAt("data1", 33), []string{at("tensor1", 0) + `tensor 1 "b": data [0x`, ") beyond end of file (size 0x"}},
		{"n_dims 0", with(func(s *spec) { s.tensors[0].ne = nil; s.tensors[0].dataLen = 4 }), []string{`tensor 0 "a": n_dims 0, want 1 to 4`}},
		{"n_dims 5", with(func(s *spec) { s.tensors[0].ne = []uint64{4, 2, 1, 1, 1} }), []string{at("tensor0.ne", -4) + `tensor 0 "a": n_dims 5, want 1 to 4`}},
		{"ne negative", with(func(s *spec) { s.tensors[1].ne = []uint64{32, 1 << 63}; s.tensors[1].dataLen = 0 }),
			[]string{at("tensor1.ne", 8) + `tensor 1 "b": ne[1] = -9223372036854775808 is negative`}},
		{"ne[1] zero", with(func(s *spec) { s.tensors[0].ne = []uint64{4, 0}; s.tensors[0].dataLen = 0 }),
			[]string{at("tensor0.ne", 8) + `tensor 0 "a": ne[1] = 0: ggml's reader divides by it`}},
		{"ne[3] zero", with(func(s *spec) { s.tensors[0].ne = []uint64{4, 1, 2, 0}; s.tensors[0].dataLen = 0 }),
			[]string{`tensor 0 "a": ne[3] = 0: ggml's reader divides by it`}},
		{"ne overflow", with(func(s *spec) { s.tensors[0].ne = []uint64{1 << 32, 1 << 32}; s.tensors[0].dataLen = 0 }),
			[]string{`tensor 0 "a": element count of shape [4294967296 4294967296] overflows int64`}},
		{"byte size overflow", with(func(s *spec) { s.tensors[0].ne = []uint64{1 << 31, 1 << 31}; s.tensors[0].dataLen = 0 }),
			[]string{`tensor 0 "a": byte size of shape [2147483648 2147483648] of type f32 overflows int64`}},
		{"row byte size overflow", with(func(s *spec) { s.tensors[0].ne = []uint64{1 << 62}; s.tensors[0].dataLen = 0 }),
			[]string{`tensor 0 "a": byte size of shape [4611686018427387904] of type f32 overflows int64`}},
		{"unknown type 4", with(func(s *spec) { s.tensors[1].typ = 4; s.tensors[1].dataLen = 34 }), []string{at("tensor1.type", 0) + `tensor 1 "b": unknown tensor type 4`}},
		{"unknown type 100", with(func(s *spec) { s.tensors[1].typ = 100; s.tensors[1].dataLen = 34 }), []string{`tensor 1 "b": unknown tensor type 100`}},
		{"row not a multiple of the block size", with(func(s *spec) { s.tensors[1].ne = []uint64{16, 2}; s.tensors[1].dataLen = 34 }),
			[]string{`tensor 1 "b": ne[0] = 16 values of type q8_0 is not a multiple of the block size 32`}},
		{"duplicate tensor name", with(func(s *spec) { s.tensors[1].name = "a" }), []string{at("tensor1", 0) + `tensor 1 "a": duplicate tensor name (first at tensor 0)`}},
		{"tensor name too long", with(func(s *spec) { s.tensors[1].name = strings.Repeat("x", 64) }), []string{`tensor 1 "xxx`, "name is 64 bytes, longer than ggml's limit of 63"}},
		{"misaligned offset", with(func(s *spec) { s.tensors[1].offset = 33 }), []string{at("tensor1", 0) + `tensor 1 "b": data offset 0x21 is not a multiple of the alignment 32`}},
		{"offset out of order", with(func(s *spec) { s.tensors[1].offset = 64 }), []string{`tensor 1 "b": data offset 0x40, want 0x20`}},
		{"data past EOF", with(func(s *spec) { s.tensors[1].ne = []uint64{32, 1000}; s.tensors[1].dataLen = 34 }),
			[]string{at("tensor1", 0) + `tensor 1 "b": data [0x`, "beyond end of file"}},
		{"offset past EOF", with(func(s *spec) {
			s.tensors[0].offset = 1 << 40
			s.kvs[1].val = u32Val(1 << 30) // so that the offset is aligned
		}), []string{`tensor 0 "a": data offset 0x10000000000, want 0x0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseBytes(tt.data)
			if err == nil {
				t.Fatalf("no error; parsed %d KVs, %d tensors", len(f.KVs), len(f.Tensors))
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %q is not ErrFormat", err)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q is %T, not *FormatError", err, err)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "t.gguf: offset 0x") {
				t.Errorf("error %q does not start with the file name and an offset", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
		})
	}
}

// TestParseSizeLies checks that a reader shorter than the size it is said to
// have gives a format error, not a panic or a short value.
func TestParseSizeLies(t *testing.T) {
	b := sampleSpec().bytes()
	for _, cut := range []int{3, 20, 40, 100, len(b) / 2} {
		_, err := Parse(bytes.NewReader(b[:cut]), int64(len(b)), "t.gguf")
		if !errors.Is(err, ErrFormat) {
			t.Errorf("cut %d: error %v, want ErrFormat", cut, err)
		}
	}
	if _, err := Parse(bytes.NewReader(b), -1, "t.gguf"); !errors.Is(err, ErrFormat) {
		t.Errorf("size -1: error %v, want ErrFormat", err)
	}
}

// TestTruncateEveryByte cuts a valid file at every offset: every cut before
// the end of the last tensor's data must give a clean *FormatError, every
// later cut (inside the final padding) must parse.
func TestTruncateEveryByte(t *testing.T) {
	b, m := sampleSpec().build()
	for cut := 0; cut < len(b); cut++ {
		f, err := parseBytes(b[:cut])
		if cut < m["end"] {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("cut at %d of %d: error %v, want *FormatError", cut, len(b), err)
			}
			if fe.Offset < 0 || fe.Offset > int64(cut) {
				t.Errorf("cut at %d: error offset %d outside the file: %v", cut, fe.Offset, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d (in the final padding, data ends at %d): %v", cut, m["end"], err)
		}
		if _, err := f.TensorData(&f.Tensors[1]); err != nil {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
}

// TestVersion2 checks that a v2 file, laid out as v3, parses the same.
func TestVersion2(t *testing.T) {
	b := with(func(s *spec) { s.version = 2 })
	f, err := parseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 2 || len(f.KVs) != 4 || len(f.Tensors) != 2 {
		t.Errorf("version %d, %d KVs, %d tensors; want 2, 4, 2", f.Version, len(f.KVs), len(f.Tensors))
	}
}

// TestDefaultAlignment checks a file without general.alignment uses 32, and
// one with alignment 64 pads to 64.
func TestAlignmentKey(t *testing.T) {
	for _, align := range []int{0, 8, 64, 4096} {
		b := with(func(s *spec) {
			if align == 0 {
				s.kvs = append(s.kvs[:1], s.kvs[2:]...)
				s.dataAlign = 32
			} else {
				s.kvs[1].val = u32Val(uint32(align))
				s.dataAlign = align
			}
		})
		f, err := parseBytes(b)
		if err != nil {
			t.Fatalf("alignment %d: %v", align, err)
		}
		want := uint64(max(align, 32))
		if align == 8 {
			want = 8
		}
		if f.Alignment != want || f.DataOffset%int64(want) != 0 {
			t.Errorf("alignment %d: got alignment %d, data offset %d", align, f.Alignment, f.DataOffset)
		}
		if f.Tensors[1].Offset != pad(32, want) {
			t.Errorf("alignment %d: tensor 1 offset %d", align, f.Tensors[1].Offset)
		}
	}
}

// getterFile has one key of every scalar type and some arrays.
func getterFile(t *testing.T) *File {
	t.Helper()
	kvs := []KV{
		NewKV("general.architecture", "llama"),
		NewKV("u8", uint8(200)),
		NewKV("i8", int8(-5)),
		NewKV("u16", uint16(60000)),
		NewKV("i16", int16(7)),
		NewKV("u32", uint32(1)<<31),
		NewKV("i32", int32(-1)),
		NewKV("u64", uint64(math.MaxUint64)),
		NewKV("i64", int64(1)<<40),
		NewKV("f32", float32(1e-5)),
		NewKV("f64", 0.25),
		NewKV("bool", true),
		NewKV("llama.block_count", "2"),
		NewKV("strs", []string{"x", "y"}),
		NewKV("f32s", []float32{1, 2}),
		NewKV("i32s", []int32{3}),
		NewKV("u32s", []uint32{3}),
	}
	var buf bytes.Buffer
	if err := Write(&buf, kvs, nil, 0); err != nil {
		t.Fatal(err)
	}
	f, err := parseBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGetters(t *testing.T) {
	f := getterFile(t)
	tests := []struct {
		get     string
		key     string
		want    any
		wantErr string // substring; "" for success
	}{
		{"String", "general.architecture", "llama", ""},
		{"String", "u8", nil, `t.gguf: offset 0x`},
		{"String", "u8", nil, `kv 1 "u8": value has type u8, want str`},
		{"Uint", "u8", uint64(200), ""},
		{"Uint", "u16", uint64(60000), ""},
		{"Uint", "u32", uint64(1) << 31, ""},
		{"Uint", "u64", uint64(math.MaxUint64), ""},
		{"Uint", "i16", uint64(7), ""},
		{"Uint", "i64", uint64(1) << 40, ""},
		{"Uint", "i8", nil, `kv 2 "i8": value -5 is negative, want an unsigned integer`},
		{"Uint", "f32", nil, `kv 9 "f32": value has type f32, want an unsigned integer`},
		{"Uint", "llama.block_count", nil, `kv 12 "llama.block_count": value has type str, want an unsigned integer`},
		{"Uint", "strs", nil, `value has type array of str, want an unsigned integer`},
		{"Int", "i8", int64(-5), ""},
		{"Int", "i32", int64(-1), ""},
		{"Int", "u32", int64(1) << 31, ""},
		{"Int", "u64", nil, `kv 7 "u64": value 18446744073709551615 overflows int64`},
		{"Int", "bool", nil, `value has type bool, want an integer`},
		{"Float", "f32", float64(float32(1e-5)), ""},
		{"Float", "f64", 0.25, ""},
		{"Float", "i32", nil, `value has type i32, want f32 or f64`},
		{"Bool", "bool", true, ""},
		{"Bool", "u8", nil, `value has type u8, want bool`},
		{"Strings", "strs", []string{"x", "y"}, ""},
		{"Strings", "f32s", nil, `kv 14 "f32s": value has type array of f32, want array of str`},
		{"Strings", "general.architecture", nil, `value has type str, want array of str`},
		{"Float32s", "f32s", []float32{1, 2}, ""},
		{"Float32s", "i32s", nil, `want array of f32`},
		{"Int32s", "i32s", []int32{3}, ""},
		{"Int32s", "u32s", nil, `value has type array of u32, want array of i32`},
		{"Uint", "missing", nil, `t.gguf: "missing": metadata key not found`},
	}
	for _, tt := range tests {
		t.Run(tt.get+"/"+tt.key, func(t *testing.T) {
			var got any
			var err error
			switch tt.get {
			case "String":
				got, err = f.String(tt.key)
			case "Uint":
				got, err = f.Uint(tt.key)
			case "Int":
				got, err = f.Int(tt.key)
			case "Float":
				got, err = f.Float(tt.key)
			case "Bool":
				got, err = f.Bool(tt.key)
			case "Strings":
				got, err = f.Strings(tt.key)
			case "Float32s":
				got, err = f.Float32s(tt.key)
			case "Int32s":
				got, err = f.Int32s(tt.key)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %#v, want %#v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %#v, want error %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.wantErr)
			}
			if tt.key == "missing" {
				if !errors.Is(err, ErrKeyNotFound) || errors.Is(err, ErrFormat) {
					t.Errorf("missing key: error %v should be ErrKeyNotFound only", err)
				}
			} else if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is not ErrFormat", err)
			}
		})
	}
	if !f.Has("u8") || f.Has("missing") {
		t.Error("Has")
	}
	if kv, ok := f.KV("i16"); !ok || kv.Value != int16(7) || kv.Type != ValueInt16 {
		t.Errorf("KV(i16) = %v, %v", kv, ok)
	}
}

// allTypesKVs has a value of every type, scalar and array, and edge values.
func allTypesKVs() []KV {
	return []KV{
		NewKV("general.architecture", "llama"),
		NewKV("u8", uint8(255)),
		NewKV("i8", int8(-128)),
		NewKV("u16", uint16(65535)),
		NewKV("i16", int16(-32768)),
		NewKV("u32", uint32(math.MaxUint32)),
		NewKV("i32", int32(math.MinInt32)),
		NewKV("f32", float32(math.SmallestNonzeroFloat32)),
		NewKV("bool.t", true),
		NewKV("bool.f", false),
		NewKV("str.empty", ""),
		NewKV("str.utf8", "héllo ▁wörld\x00\n"),
		NewKV("u64", uint64(math.MaxUint64)),
		NewKV("i64", int64(math.MinInt64)),
		NewKV("f64", math.Inf(-1)),
		NewKV("a.u8", []uint8{0, 1, 255}),
		NewKV("a.i8", []int8{-1, 0, 1}),
		NewKV("a.u16", []uint16{1, 2}),
		NewKV("a.i16", []int16{-2}),
		NewKV("a.u32", []uint32{}),
		NewKV("a.i32", []int32{1, -1, 1 << 30}),
		NewKV("a.f32", []float32{1.5, -0.0, float32(math.Inf(1))}),
		NewKV("a.bool", []bool{true, false, true}),
		NewKV("a.str", []string{"<unk>", "<s>", "", "▁the"}),
		NewKV("a.u64", []uint64{1 << 63}),
		NewKV("a.i64", []int64{-1}),
		NewKV("a.f64", []float64{math.Pi}),
		NewKV("a.arr", []Array{
			{ValueInt32, []int32{1, 2}},
			{ValueString, []string{"x"}},
			{ValueArray, []Array{{ValueBool, []bool{}}}},
		}),
	}
}

// randomTensors makes tensors of several types with random bytes.
func randomTensors(seed uint64) []WriteTensor {
	rng := rand.New(rand.NewPCG(seed, 1))
	var ts []WriteTensor
	for i, spec := range []struct {
		typ quant.Type
		ne  []int64
	}{
		{quant.F32, []int64{64}},
		{quant.F16, []int64{8, 3}},
		{quant.Q8_0, []int64{64, 4}},
		{quant.Q4_K, []int64{256, 2, 1}},
		{quant.Q6_K, []int64{256, 1, 2, 1}},
		{quant.I32, []int64{5}},
		{quant.BF16, []int64{3, 3}},
		{quant.F32, []int64{0, 7}},
	} {
		row, err := spec.typ.RowBytes(spec.ne[0])
		if err != nil {
			panic(err)
		}
		n := row
		for _, d := range spec.ne[1:] {
			n *= d
		}
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		ts = append(ts, WriteTensor{Name: fmt.Sprintf("blk.%d.%s.weight", i, spec.typ), Ne: spec.ne, Type: spec.typ, Data: data})
	}
	return ts
}

// writeTensorsOf returns f's tensors with their data, ready to write again.
func writeTensorsOf(t testing.TB, f *File) []WriteTensor {
	var ts []WriteTensor
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		data, err := f.TensorData(ti)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, WriteTensor{Name: ti.Name, Ne: ti.Ne, Type: ti.Type, Data: data})
	}
	return ts
}

func TestWriteRoundTrip(t *testing.T) {
	for _, align := range []uint64{0, 32, 64, 1} {
		t.Run(fmt.Sprint("alignment ", align), func(t *testing.T) {
			kvs := allTypesKVs()
			tensors := randomTensors(align)
			var buf bytes.Buffer
			if err := Write(&buf, kvs, tensors, align); err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()
			f, err := parseBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			wantAlign := max(align, 0)
			if align == 0 {
				wantAlign = DefaultAlignment
			}
			wantKVs := kvs
			if wantAlign != DefaultAlignment {
				wantKVs = append(kvs, NewKV(KeyAlignment, uint32(wantAlign)))
			}
			if f.Version != 3 || f.Alignment != wantAlign {
				t.Errorf("version %d alignment %d, want 3 %d", f.Version, f.Alignment, wantAlign)
			}
			if !reflect.DeepEqual(f.KVs, wantKVs) {
				t.Errorf("KVs differ:\n got %#v\nwant %#v", f.KVs, wantKVs)
			}
			if len(f.Tensors) != len(tensors) {
				t.Fatalf("%d tensors, want %d", len(f.Tensors), len(tensors))
			}
			var off uint64
			for i, want := range tensors {
				ti := &f.Tensors[i]
				if ti.Name != want.Name || ti.Type != want.Type || !reflect.DeepEqual(ti.Ne, want.Ne) || ti.Index != i {
					t.Errorf("tensor %d: got %+v, want %s %s %v", i, ti, want.Name, want.Type, want.Ne)
				}
				if ti.Offset != off || ti.Size != int64(len(want.Data)) {
					t.Errorf("tensor %d: offset %d size %d, want %d %d", i, ti.Offset, ti.Size, off, len(want.Data))
				}
				off = pad(off+uint64(len(want.Data)), wantAlign)
				got, err := f.TensorData(ti)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want.Data) {
					t.Errorf("tensor %d %q: data differs", i, ti.Name)
				}
			}
			// The file ends with the last tensor's padding, as ggml writes it.
			if want := f.DataOffset + int64(off); int64(len(b)) != want {
				t.Errorf("file is %d bytes, want %d", len(b), want)
			}
			// Write what was read: the same bytes.
			var again bytes.Buffer
			if err := Write(&again, f.KVs, writeTensorsOf(t, f), 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), b) {
				t.Errorf("re-written file differs (%d vs %d bytes)", again.Len(), len(b))
			}
		})
	}
}

func TestWriteFileAndOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(path, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	tensors := randomTensors(7)
	if err := WriteFile(path, allTypesKVs(), tensors, 64); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "m.gguf" {
		t.Errorf("directory holds %v, want only m.gguf (no temporary file)", entries)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != path || f.Alignment != 64 {
		t.Errorf("path %q alignment %d", f.Path, f.Alignment)
	}
	for i, want := range tensors {
		ti, ok := f.Tensor(want.Name)
		if !ok {
			t.Fatalf("tensor %q missing", want.Name)
		}
		got, err := f.TensorData(ti)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Data) {
			t.Errorf("tensor %d: data differs", i)
		}
		if cap(got) != len(got) {
			t.Errorf("tensor %d: TensorData slice has spare capacity %d", i, cap(got)-len(got))
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.TensorData(&f.Tensors[0]); err == nil {
		t.Error("TensorData after Close: no error")
	}

	// A failed write leaves the old file alone and no temporary file.
	bad := []WriteTensor{{Name: "x", Ne: []int64{4}, Type: quant.F32, Data: make([]byte, 3)}}
	if err := WriteFile(path, nil, bad, 0); err == nil {
		t.Error("WriteFile with bad data: no error")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("after a failed write the directory holds %v", entries)
	}
	if _, err := Open(path); err != nil {
		t.Errorf("old file damaged by a failed write: %v", err)
	}

	// Open of an empty file and of a missing one.
	empty := filepath.Join(dir, "empty.gguf")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "empty.gguf: offset 0x0: header: empty file") {
		t.Errorf("Open(empty): %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing): %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("Open(directory): no error")
	}
}

func TestTensorDataBounds(t *testing.T) {
	f, err := parseBytes(sampleSpec().bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range []*TensorInfo{
		nil,
		{Name: "x", Offset: uint64(f.Size), Size: 1},
		{Name: "x", Offset: 0, Size: f.Size},
		{Name: "x", Offset: math.MaxUint64, Size: 1},
		{Name: "x", Offset: 0, Size: -1},
	} {
		if _, err := f.TensorData(ti); err == nil {
			t.Errorf("TensorData(%+v): no error", ti)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	f32 := func(name string, ne ...int64) WriteTensor {
		n := int64(4)
		for _, d := range ne {
			n *= d
		}
		return WriteTensor{Name: name, Ne: ne, Type: quant.F32, Data: make([]byte, max(n, 0))}
	}
	tests := []struct {
		name    string
		kvs     []KV
		tensors []WriteTensor
		align   uint64
		want    string
	}{
		{"empty key", []KV{NewKV("", "x")}, nil, 0, "kv 0: empty key"},
		{"duplicate key", []KV{NewKV("a", "x"), NewKV("a", "y")}, nil, 0, `kv 1 "a": duplicate key (first at kv 0)`},
		{"type mismatch", []KV{{"a", ValueUint32, int32(1)}}, nil, 0, `kv 0 "a": type u32 needs a Go uint32 value, not int32`},
		{"bad type", []KV{{"a", ValueType(13), int32(1)}}, nil, 0, `kv 0 "a": type gguf_type(13) needs`},
		{"array not Array", []KV{{"a", ValueArray, []int32{1}}}, nil, 0, `kv 0 "a": type arr needs a model.Array value, not []int32`},
		{"array elem mismatch", []KV{{"a", ValueArray, Array{ValueInt32, []uint32{1}}}}, nil, 0, `array of i32 needs a []int32, not []uint32`},
		{"nested mismatch", []KV{NewKV("a", []Array{{ValueInt8, []int32{}}})}, nil, 0, `element 0: array of i8 needs a []int8`},
		{"alignment not u32", []KV{NewKV(KeyAlignment, uint64(32))}, nil, 0, "alignment must be a u32"},
		{"alignment 3", []KV{NewKV(KeyAlignment, uint32(3))}, nil, 0, "alignment 3 is not a power of two"},
		{"alignment param 48", nil, nil, 48, "alignment 48 is not a power of two"},
		{"alignment disagrees", []KV{NewKV(KeyAlignment, uint32(64))}, nil, 32, "alignment 32 disagrees with general.alignment = 64"},
		{"alignment too big", nil, nil, 1 << 40, "does not fit in a u32"},
		{"no dims", nil, []WriteTensor{f32("t")}, 0, `tensor 0 "t": 0 dimensions, want 1 to 4`},
		{"5 dims", nil, []WriteTensor{f32("t", 1, 1, 1, 1, 1)}, 0, `tensor 0 "t": 5 dimensions`},
		{"negative", nil, []WriteTensor{{Name: "t", Ne: []int64{4, -1}, Type: quant.F32}}, 0, `ne[1] = -1 is negative`},
		{"too large", nil, []WriteTensor{{Name: "t", Ne: []int64{1 << 40, 1 << 40}, Type: quant.F32}}, 0, `element count of shape [1099511627776 1099511627776] overflows int64`},
		{"unknown type", nil, []WriteTensor{{Name: "t", Ne: []int64{4}, Type: 5}}, 0, "unknown tensor type 5"},
		{"zero dimension", nil, []WriteTensor{{Name: "t", Ne: []int64{4, 0, 2}, Type: quant.F32}}, 0, "ne[1] = 0: ggml's reader divides by it"},
		{"block multiple", nil, []WriteTensor{{Name: "t", Ne: []int64{16}, Type: quant.Q8_0}}, 0, `tensor 0 "t": ne[0] = 16 values of type q8_0 is not a multiple of the block size 32`},
		{"data length", nil, []WriteTensor{{Name: "t", Ne: []int64{4}, Type: quant.F32, Data: make([]byte, 15)}}, 0, `tensor 0 "t": 15 bytes of data, want 16`},
		{"duplicate name", nil, []WriteTensor{f32("t", 1), f32("t", 1)}, 0, `tensor 1 "t": duplicate tensor name (first at tensor 0)`},
		{"long name", nil, []WriteTensor{f32(strings.Repeat("n", 64), 1)}, 0, "longer than ggml's limit of 63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.kvs, tt.tensors, tt.align)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the error", buf.Len())
			}
		})
	}
}

func TestNewKVPanicsOnInt(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewKV(int) did not panic")
		}
	}()
	NewKV("x", 1)
}

// TestNaNRoundTrip checks that NaN payloads and -0 survive write → read →
// write bit for bit.
func TestNaNRoundTrip(t *testing.T) {
	nan := math.Float32frombits(0x7fc00123)
	kvs := []KV{NewKV("nan", nan), NewKV("nans", []float32{nan, float32(math.Copysign(0, -1))}), NewKV("nan64", math.NaN())}
	var b1, b2 bytes.Buffer
	if err := Write(&b1, kvs, nil, 0); err != nil {
		t.Fatal(err)
	}
	f, err := parseBytes(b1.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := math.Float32bits(f.KVs[0].Value.(float32)); got != 0x7fc00123 {
		t.Errorf("NaN bits %#x", got)
	}
	if err := Write(&b2, f.KVs, nil, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Error("re-written bytes differ")
	}
}

// sharedDir finds the project's read-only shared/ folder by walking up from
// the test's directory, or skips the test.
func sharedDir(t testing.TB) string {
	t.Helper()
	return testshared.Dir(t)
}

func sharedFile(t testing.TB, rel string) string {
	t.Helper()
	return testshared.File(t, rel)
}

// TestSharedVocab reads llama.cpp's vocabulary-only GGUF files.
func TestSharedVocab(t *testing.T) {
	tests := []struct {
		file   string
		arch   string
		nKV    int
		tokens int
		merges int
	}{
		{"ggml-vocab-llama-spm.gguf", "llama", 22, 32000, 0},
		{"ggml-vocab-phi-3.gguf", "phi3", 26, 32064, 0},
		{"ggml-vocab-gpt-2.gguf", "gpt2", 16, 50257, 50000},
		{"ggml-vocab-starcoder.gguf", "starcoder2", 19, 49152, 48872},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := Open(sharedFile(t, filepath.Join("vocab", tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Version != 3 || f.Arch() != tt.arch || len(f.KVs) != tt.nKV || len(f.Tensors) != 0 {
				t.Errorf("version %d arch %q, %d KVs, %d tensors; want 3 %q %d 0", f.Version, f.Arch(), len(f.KVs), len(f.Tensors), tt.arch, tt.nKV)
			}
			toks, err := f.Strings("tokenizer.ggml.tokens")
			if err != nil || len(toks) != tt.tokens {
				t.Errorf("tokens: %d, %v; want %d", len(toks), err, tt.tokens)
			}
			types, err := f.Int32s("tokenizer.ggml.token_type")
			if err != nil || len(types) != tt.tokens {
				t.Errorf("token_type: %d, %v; want %d", len(types), err, tt.tokens)
			}
			if tt.merges > 0 {
				merges, err := f.Strings("tokenizer.ggml.merges")
				if err != nil || len(merges) != tt.merges {
					t.Errorf("merges: %d, %v; want %d", len(merges), err, tt.merges)
				}
			} else {
				scores, err := f.Float32s("tokenizer.ggml.scores")
				if err != nil || len(scores) != tt.tokens {
					t.Errorf("scores: %d, %v; want %d", len(scores), err, tt.tokens)
				}
			}
			if tt.arch == "llama" {
				if toks[1] != "<s>" || toks[29892] != "," {
					t.Errorf("tokens[1] = %q, tokens[29892] = %q", toks[1], toks[29892])
				}
				if n, err := f.Uint("llama.block_count"); n != 32 || err != nil {
					t.Errorf("llama.block_count = %d, %v", n, err)
				}
			}
		})
	}
}

// TestSharedModel reads llama.cpp's 2-layer Q8_0 llama and writes it back:
// Write reproduces the file byte for byte.
func TestSharedModel(t *testing.T) {
	path := sharedFile(t, "llamacpp/S-Q8_0.gguf")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Arch() != "llama" || len(f.KVs) != 22 || len(f.Tensors) != 21 || f.Alignment != 32 {
		t.Errorf("arch %q, %d KVs, %d tensors, alignment %d; want llama 22 21 32", f.Arch(), len(f.KVs), len(f.Tensors), f.Alignment)
	}
	for key, want := range map[string]uint64{
		"llama.block_count": 2, "llama.embedding_length": 64, "llama.feed_forward_length": 128,
		"llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
	} {
		if got, err := f.Uint(key); got != want || err != nil {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	if eps, err := f.Float("llama.attention.layer_norm_rms_epsilon"); err != nil || eps != float64(float32(1e-5)) {
		t.Errorf("rms epsilon %v, %v", eps, err)
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || emb.Type != quant.Q8_0 || !reflect.DeepEqual(emb.Ne, []int64{64, 32000}) || emb.Size != 32000*2*34 {
		t.Fatalf("token_embd.weight: %+v", emb)
	}
	data, err := f.TensorData(emb)
	if err != nil {
		t.Fatal(err)
	}
	start := f.DataOffset + int64(emb.Offset)
	if !bytes.Equal(data, orig[start:start+emb.Size]) {
		t.Error("token_embd.weight data differs from the file's bytes")
	}
	var buf bytes.Buffer
	if err := Write(&buf, f.KVs, writeTensorsOf(t, f), 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), orig) {
		n := 0
		for n < min(buf.Len(), len(orig)) && buf.Bytes()[n] == orig[n] {
			n++
		}
		t.Errorf("re-written file differs from llama.cpp's at byte %d (%d vs %d bytes)", n, buf.Len(), len(orig))
	}
}

func TestFormatErrorText(t *testing.T) {
	tests := []struct {
		e    FormatError
		want string
	}{
		{FormatError{File: "m.gguf", Offset: 0x2a8, Part: "tensor", Index: 17, Tensor: "blk.1.ffn_up.weight", Msg: "data beyond end of file"},
			`m.gguf: offset 0x2a8: tensor 17 "blk.1.ffn_up.weight": data beyond end of file`},
		{FormatError{File: "m.gguf", Offset: -1, Part: "kv", Index: -1, Key: "k", Msg: "bad"}, `m.gguf: kv "k": bad`},
		{FormatError{File: "m.gguf", Offset: 4, Part: "header", Index: -1, Msg: "bad"}, `m.gguf: offset 0x4: header: bad`},
		{FormatError{File: "m.gguf", Offset: -1, Index: -1, Msg: "bad"}, `m.gguf: bad`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

// zeroTail is an io.ReaderAt of size bytes: head, then zeros.
type zeroTail struct {
	head []byte
	size int64
}

func (z zeroTail) ReadAt(p []byte, off int64) (int, error) {
	if off >= z.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off+int64(n) < z.size {
		if i := off + int64(n); i < int64(len(z.head)) {
			p[n] = z.head[i]
		} else {
			p[n] = 0
		}
		n++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// header is a GGUF v3 header with the given counts.
func header(nTensors, nKV uint64) []byte {
	b := []byte("GGUF\x03\x00\x00\x00")
	b = binary.LittleEndian.AppendUint64(b, nTensors)
	return binary.LittleEndian.AppendUint64(b, nKV)
}

// TestHugeCountsAllocateLittle checks that corrupt counts allocate next to
// nothing before the parse fails, in a small file and in a (sparse) 64 GiB
// one.
func TestHugeCountsAllocateLittle(t *testing.T) {
	tests := []struct {
		name string
		r    io.ReaderAt
		size int64
	}{
		{"n_kv 2^62", bytes.NewReader(patchU64("n_kv", 1<<62)), 0},
		{"n_tensors 2^62", bytes.NewReader(patchU64("n_tensors", 1<<62)), 0},
		{"string array 2^63", bytes.NewReader(patchU64("tokens.0", 1<<63)), 0},
		{"n_kv 2^40 in 64 GiB", zeroTail{header(0, 1<<40), 64 << 30}, 64 << 30},
		{"n_tensors 2^40 in 64 GiB", zeroTail{header(1<<40, 0), 64 << 30}, 64 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.size
			if size == 0 {
				size = tt.r.(*bytes.Reader).Size()
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Parse(tt.r, size, "t.gguf")
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v, want ErrFormat", err)
			}
			t.Logf("%d bytes allocated: %v", after.TotalAlloc-before.TotalAlloc, err)
			if n := after.TotalAlloc - before.TotalAlloc; n > 2<<20 {
				t.Errorf("Parse allocated %d bytes before failing: %v", n, err)
			}
		})
	}
}
