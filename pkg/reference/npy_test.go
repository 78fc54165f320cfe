package reference

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// npyBytes builds a .npy file by hand: preamble of version major, the
// header text as given (no padding added), and raw data.
func npyBytes(major byte, header string, raw []byte) []byte {
	var b bytes.Buffer
	b.WriteString(npyMagic)
	b.WriteByte(major)
	b.WriteByte(0)
	if major == 1 {
		binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	} else {
		binary.Write(&b, binary.LittleEndian, uint32(len(header)))
	}
	b.WriteString(header)
	b.Write(raw)
	return b.Bytes()
}

func f32Bytes(order binary.ByteOrder, vals ...float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		order.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func decode(t *testing.T, b []byte) (*Array, error) {
	t.Helper()
	return DecodeNPY(bytes.NewReader(b), int64(len(b)))
}

// TestNPYNumpyBytes checks the writer byte for byte against what
// np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) writes.
func TestNPYNumpyBytes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.npy")
	if err := WriteNPYFloat32(p, []int64{2, 3}, []float32{0, 1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
	hdr := dict + strings.Repeat(" ", 128-10-len(dict)-1) + "\n"
	want := npyBytes(1, hdr, f32Bytes(binary.LittleEndian, 0, 1, 2, 3, 4, 5))
	if !bytes.Equal(got, want) {
		t.Errorf("writer output differs from numpy's:\n got %q\nwant %q", got, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

func TestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	shapes := [][]int64{{}, {1}, {7}, {2, 3}, {2, 0, 4}, {1, 2, 3, 4}, {3, 1, 1, 1}}
	for _, shape := range shapes {
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		f := make([]float32, n)
		h := make([]uint16, n)
		i := make([]int32, n)
		for k := range f {
			f[k] = float32(k)*0.37 - 1
			h[k] = uint16(0x3c00 + k) // 1.0, 1.0009765625, ...
			i[k] = int32(k*1000 - 7)
		}
		for _, c := range []struct {
			name  string
			write func(p string) error
			descr string
			want  func(k int) float32
		}{
			{"f32", func(p string) error { return WriteNPYFloat32(p, shape, f) }, "<f4", func(k int) float32 { return f[k] }},
			{"f16", func(p string) error { return WriteNPYFloat16(p, shape, h) }, "<f2", func(k int) float32 { return 1 + float32(k)/1024 }},
			{"i32", func(p string) error { return WriteNPYInt32(p, shape, i) }, "<i4", func(k int) float32 { return float32(i[k]) }},
		} {
			p := filepath.Join(dir, c.name+pyShape(shape)+".npy")
			if err := c.write(p); err != nil {
				t.Fatalf("%s %v: %v", c.name, shape, err)
			}
			a, err := ReadNPY(p)
			if err != nil {
				t.Fatalf("%s %v: %v", c.name, shape, err)
			}
			if a.Descr != c.descr || pyShape(a.Shape) != pyShape(shape) || a.DataOffset%64 != 0 || a.Major != 1 {
				t.Errorf("%s %v: header %+v", c.name, shape, a.NPYHeader)
			}
			if len(a.Data) != n {
				t.Fatalf("%s %v: %d values, want %d", c.name, shape, len(a.Data), n)
			}
			for k := range a.Data {
				if a.Data[k] != c.want(k) {
					t.Errorf("%s %v: [%d] = %v, want %v", c.name, shape, k, a.Data[k], c.want(k))
					break
				}
			}
		}
	}
	if err := WriteNPYFloat32(filepath.Join(dir, "bad.npy"), []int64{2, 2}, []float32{1, 2, 3}); err == nil {
		t.Error("writing 3 values with shape (2, 2) succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.npy")); err == nil {
		t.Error("a failed write left its file")
	}
}

func TestNPYDtypes(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	hdr := func(descr string) string {
		return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (3,), }\n"
	}
	cases := []struct {
		descr string
		raw   []byte
		want  []float32
	}{
		{"<f4", f32Bytes(le, 1.5, -2, float32(math.Inf(1))), []float32{1.5, -2, float32(math.Inf(1))}},
		{">f4", f32Bytes(be, 1.5, -2, 3), []float32{1.5, -2, 3}},
		{"=f4", f32Bytes(binary.NativeEndian, 0.25, -0.5, 7), []float32{0.25, -0.5, 7}},
		{"<f2", []byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00}, []float32{1, -2, 5.960464477539063e-08}},
		{">f2", []byte{0x3c, 0x00, 0xc0, 0x00, 0x7b, 0xff}, []float32{1, -2, 65504}},
		{"<f8", func() []byte {
			b := make([]byte, 24)
			for i, v := range []float64{0.1, -1e300, 3} {
				le.PutUint64(b[8*i:], math.Float64bits(v))
			}
			return b
		}(), []float32{0.1, float32(math.Inf(-1)), 3}},
		{"<i4", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x80}, []float32{1, -1, -2147483648}},
		{"<i8", []byte{5, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0}, []float32{5, -2, 16777216}},
		{"|u1", []byte{0, 255, 7}, []float32{0, 255, 7}},
		{"|i1", []byte{0, 255, 0x80}, []float32{0, -1, -128}},
		{"|b1", []byte{0, 1, 1}, []float32{0, 1, 1}},
		{"<u2", []byte{1, 0, 0xff, 0xff, 2, 1}, []float32{1, 65535, 258}},
	}
	for _, c := range cases {
		for _, major := range []byte{1, 2, 3} {
			a, err := decode(t, npyBytes(major, hdr(c.descr), c.raw))
			if err != nil {
				t.Errorf("%s v%d: %v", c.descr, major, err)
				continue
			}
			for i := range c.want {
				if a.Data[i] != c.want[i] {
					t.Errorf("%s v%d: [%d] = %v, want %v", c.descr, major, i, a.Data[i], c.want[i])
				}
			}
		}
	}
}

func TestNPYErrors(t *testing.T) {
	good := "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n"
	data := f32Bytes(binary.LittleEndian, 1, 2)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "shorter than the 10-byte preamble"},
		{"magic", append([]byte("\x93NUMPZ\x01\x00\x00\x00"), data...), "not a .npy file: magic"},
		{"version", npyBytes(4, good, data), "unsupported .npy version 4.0"},
		{"header past end", npyBytes(1, good, data)[:20], "runs past the end of the file"},
		{"fortran short data", npyBytes(1, strings.Replace(strings.Replace(good, "False", "True", 1), "(2,)", "(2, 2)", 1), data), "needs 4 items (16 bytes) but 8 bytes"},
		{"fortran not bool", npyBytes(1, strings.Replace(good, "False", "1", 1), data), "non-bool 'fortran_order'"},
		{"short data", npyBytes(1, good, data[:7]), "needs 2 items (8 bytes) but 7 bytes"},
		{"extra data", npyBytes(1, good, append(data, 0)), "but 9 bytes of data follow"},
		{"dtype", npyBytes(1, strings.Replace(good, "<f4", "<c8", 1), data), `unsupported dtype "<c8"`},
		{"byte order", npyBytes(1, strings.Replace(good, "<f4", "|f4", 1), data), "byte order '|' on a 4-byte type"},
		{"structured", npyBytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n", data), "structured dtypes"},
		{"negative dim", npyBytes(1, strings.Replace(good, "(2,)", "(-2,)", 1), data), "non-negative integer"},
		{"overflow", npyBytes(1, strings.Replace(good, "(2,)", "(4294967296, 4294967296, 4)", 1), data), "overflows"},
		{"huge", npyBytes(1, strings.Replace(good, "(2,)", "(4611686018427387904,)", 1), data), "but 8 bytes of data follow"},
		{"missing key", npyBytes(1, "{'descr': '<f4', 'shape': (2,), }\n", data), "'fortran_order'"},
		{"extra key", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n", data), `unexpected key "x"`},
		{"duplicate key", npyBytes(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}\n", data), "duplicate key"},
		{"not a dict", npyBytes(1, "(1, 2)\n", data), "not a dict"},
		{"garbage", npyBytes(1, good+"x", data), "unexpected"},
		{"non-ascii", npyBytes(1, strings.Replace(good, "}", "\xff}", 1), data), "non-ASCII byte 0xff"},
		{"unterminated", npyBytes(1, "{'descr': '<f4\n", data), "unterminated string"},
	}
	for _, c := range cases {
		_, err := decode(t, c.file)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrFormat) {
			t.Errorf("%s: error %q, want it to contain %q and match ErrFormat", c.name, err, c.want)
		}
	}
	// Errors from files name the file and the offset.
	p := filepath.Join(t.TempDir(), "bad.npy")
	os.WriteFile(p, npyBytes(1, good, data[:7]), 0o644)
	_, err := ReadNPY(p)
	if err == nil || !strings.Contains(err.Error(), p+": offset 68:") {
		t.Errorf("ReadNPY error %q does not name file and offset", err)
	}
}

// TestNPYFortran reads Fortran-order (column-major) arrays, as
// np.save writes np.asfortranarray(x) or a transpose x.T without a copy:
// the items come back in C order, for every dtype path (float32 read in
// place, float16 through the table, the general conversion) and into a
// caller's buffer.
func TestNPYFortran(t *testing.T) {
	// x = np.arange(24).reshape(2, 3, 4); column-major items are
	// x[i0, i1, i2] at i0 + 2·i1 + 6·i2.
	shape := []int64{2, 3, 4}
	colMajor := make([]float32, 24)
	for i0 := range 2 {
		for i1 := range 3 {
			for i2 := range 4 {
				colMajor[i0+2*i1+6*i2] = float32(12*i0 + 4*i1 + i2)
			}
		}
	}
	want := make([]float32, 24)
	for i := range want {
		want[i] = float32(i)
	}
	f16 := make([]byte, 48)
	i32 := make([]byte, 96)
	for i, v := range colMajor {
		binary.BigEndian.PutUint16(f16[2*i:], float32ToHalfExact(t, v))
		binary.LittleEndian.PutUint32(i32[4*i:], uint32(int32(v)))
	}
	hdr := func(descr string, shape string) string {
		return "{'descr': '" + descr + "', 'fortran_order': True, 'shape': " + shape + ", }\n"
	}
	cases := []struct {
		name  string
		file  []byte
		shape []int64
		want  []float32
	}{
		{"f4", npyBytes(1, hdr("<f4", "(2, 3, 4)"), f32Bytes(binary.LittleEndian, colMajor...)), shape, want},
		{">f4", npyBytes(1, hdr(">f4", "(2, 3, 4)"), f32Bytes(binary.BigEndian, colMajor...)), shape, want},
		{">f2", npyBytes(1, hdr(">f2", "(2, 3, 4)"), f16), shape, want},
		{"i4", npyBytes(2, hdr("<i4", "(2, 3, 4)"), i32), shape, want},
		// (hidden, tokens) saved as the transpose of a C-order (tokens,
		// hidden) array: x.T of [[1, 2, 3], [4, 5, 6]].
		{"transpose", npyBytes(1, hdr("<f4", "(3, 2)"), f32Bytes(binary.LittleEndian, 1, 2, 3, 4, 5, 6)), []int64{3, 2}, []float32{1, 4, 2, 5, 3, 6}},
		// At most one dimension above 1: the same items either way.
		{"vector", npyBytes(1, hdr("<f4", "(1, 3, 1)"), f32Bytes(binary.LittleEndian, 7, 8, 9)), []int64{1, 3, 1}, []float32{7, 8, 9}},
		{"0-d", npyBytes(1, hdr("<f4", "()"), f32Bytes(binary.LittleEndian, 5)), []int64{}, []float32{5}},
		{"empty", npyBytes(1, hdr("<f4", "(0, 3)"), nil), []int64{0, 3}, []float32{}},
	}
	for _, c := range cases {
		a, err := decode(t, c.file)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !a.FortranOrder || !slices.Equal(a.Shape, c.shape) || !slices.Equal(a.Data, c.want) {
			t.Errorf("%s: fortran %v shape %v data %v, want shape %v data %v", c.name, a.FortranOrder, a.Shape, a.Data, c.shape, c.want)
		}
	}
	// Into a caller's buffer, like a C-order file.
	p := filepath.Join(t.TempDir(), "f.npy")
	if err := os.WriteFile(p, cases[0].file, 0o644); err != nil {
		t.Fatal(err)
	}
	buf := make([]float32, 30)
	a, err := ReadNPYInto(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Data, want) || &a.Data[0] != &buf[0] {
		t.Errorf("ReadNPYInto: %v (in the buffer: %v)", a.Data, &a.Data[0] == &buf[0])
	}
	// The header alone says so too.
	if h, err := ReadNPYHeader(p); err != nil || !h.FortranOrder {
		t.Errorf("ReadNPYHeader: %+v, %v", h, err)
	}
}

// float32ToHalfExact converts a float32 that float16 holds exactly.
func float32ToHalfExact(t *testing.T, v float32) uint16 {
	t.Helper()
	for h := range 1 << 16 {
		if halfToFloat32(uint16(h)) == v {
			return uint16(h)
		}
	}
	t.Fatalf("%v is not a float16 value", v)
	return 0
}

// TestHalfToFloat32 checks all 65536 half values against the definition.
func TestHalfToFloat32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, m := (h>>10)&0x1f, h&0x3ff
		var want float64
		switch e {
		case 0:
			want = sign * math.Ldexp(float64(m), -24)
		case 31:
			want = math.Inf(int(sign))
			if m != 0 {
				want = math.NaN()
			}
		default:
			want = sign * math.Ldexp(1+float64(m)/1024, e-15)
		}
		got := float64(halfToFloat32(uint16(h)))
		if math.IsNaN(want) {
			if bits := math.Float32bits(halfToFloat32(uint16(h))); !math.IsNaN(got) || bits&0x7fffff != uint32(m)<<13 {
				t.Fatalf("half %#04x: got %v (bits %#08x), want NaN with payload %#x", h, got, bits, m)
			}
			continue
		}
		if got != want || math.Signbit(got) != math.Signbit(want) {
			t.Fatalf("half %#04x: got %v, want %v", h, got, want)
		}
	}
}

func FuzzNPY(f *testing.F) {
	dir := f.TempDir()
	seed := func(write func(string) error) {
		p := filepath.Join(dir, "s.npy")
		if err := write(p); err != nil {
			f.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	seed(func(p string) error { return WriteNPYFloat32(p, []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}) })
	seed(func(p string) error { return WriteNPYFloat16(p, []int64{4}, []uint16{0x3c00, 0x7c00, 0xfc00, 0x7e00}) })
	seed(func(p string) error { return WriteNPYInt32(p, []int64{}, []int32{42}) })
	f.Add(npyBytes(2, "{'descr': '>f8', 'fortran_order': False, 'shape': (1, 1), }\n", make([]byte, 8)))
	f.Add(npyBytes(3, "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (3L,)}\n", []byte{1, 2, 3}))
	f.Add(npyBytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", f32Bytes(binary.LittleEndian, 0, 3, 1, 4, 2, 5)))
	f.Add(npyBytes(1, "{'descr': '>f2', 'fortran_order': True, 'shape': (2, 1, 2), }\n", []byte{0x3c, 0, 0x40, 0, 0x42, 0, 0x44, 0}))
	f.Add(npyBytes(1, "{'descr': '<i4', 'fortran_order': True, 'shape': (0, 3), }\n", nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeNPY(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not match ErrFormat", err)
			}
			return
		}
		if int64(len(a.Data)) != a.Numel() {
			t.Fatalf("%d values for shape %v", len(a.Data), a.Shape)
		}
		// Whatever was read survives a float32 round trip bit for bit.
		var buf bytes.Buffer
		if err := EncodeNPY(&buf, "<f4", a.Shape, f32Bytes(binary.LittleEndian, a.Data...)); err != nil {
			t.Fatal(err)
		}
		b2, err := DecodeNPY(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		for i := range a.Data {
			if math.Float32bits(a.Data[i]) != math.Float32bits(b2.Data[i]) {
				t.Fatalf("value %d changed in a round trip", i)
			}
		}
	})
}

// TestReadNPYInto checks that float32 and float16 arrays are stored in the
// caller's buffer when it is large enough, and in new memory otherwise.
func TestReadNPYInto(t *testing.T) {
	dir := t.TempDir()
	data := []float32{1, -2, 0.5, 3}
	f32 := filepath.Join(dir, "a.npy")
	if err := WriteNPYFloat32(f32, []int64{2, 2}, data); err != nil {
		t.Fatal(err)
	}
	f16 := filepath.Join(dir, "h.npy")
	if err := WriteNPYFloat16(f16, []int64{4}, []uint16{0x3c00, 0xc000, 0x3800, 0x4200}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{f32, f16} {
		big := make([]float32, 10)
		a, err := ReadNPYInto(path, big)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Data, data) || &a.Data[0] != &big[0] {
			t.Errorf("%s: read %v into a large buffer (shared %v)", path, a.Data, &a.Data[0] == &big[0])
		}
		small := make([]float32, 3)
		a, err = ReadNPYInto(path, small)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Data, data) || &a.Data[0] == &small[0] || !slices.Equal(small, []float32{0, 0, 0}) {
			t.Errorf("%s: read %v past a small buffer %v", path, a.Data, small)
		}
	}
}
