package quant

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dqFloatBytes is the little-endian bytes of xs.
func dqFloatBytes(xs []float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// readDequantGolden reads testdata/dequant/expected.txt.
func readDequantGolden(dir string) ([]dequantGolden, error) {
	f, err := os.Open(filepath.Join(dir, "expected.txt"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []dequantGolden
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		fs := strings.Fields(s)
		if len(fs) != 3 {
			return nil, fmt.Errorf("expected.txt:%d: want 3 fields, got %d", line, len(fs))
		}
		n, err := strconv.Atoi(fs[1])
		if err != nil {
			return nil, fmt.Errorf("expected.txt:%d: %v", line, err)
		}
		out = append(out, dequantGolden{file: fs[0], n: n, sha256: fs[2]})
	}
	return out, sc.Err()
}

// dequantGolden is one line of testdata/dequant/expected.txt.
type dequantGolden struct {
	file   string
	n      int
	sha256 string
}

// TestDequantGolden decodes the fixtures written by TestDequantGoldenLlamacpp
// (blocks quantized by llama.cpp plus random-byte blocks, for every type) and
// compares the SHA-256 of the float32 bits with what llama.cpp's to_float
// produced: bit-identity checked without cgo.
func TestDequantGolden(t *testing.T) {
	dir := filepath.Join("testdata", "dequant")
	golden, err := readDequantGolden(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Type]bool{}
	for _, g := range golden {
		ty, err := ParseType(strings.TrimSuffix(g.file, ".bin"))
		if err != nil {
			t.Fatalf("%s: %v", g.file, err)
		}
		seen[ty] = true
		q, err := os.ReadFile(filepath.Join(dir, g.file))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, g.n)
		if err := Dequantize(ty, q, got); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(dqFloatBytes(got))
		if hex.EncodeToString(sum[:]) != g.sha256 {
			t.Errorf("%s: %d values differ from llama.cpp's (sha256 %x, want %s)", ty, g.n, sum, g.sha256)
		}
	}
	for _, ty := range Types() {
		if CanDequantize(ty) && !seen[ty] {
			t.Errorf("%s: no fixture in %s", ty, dir)
		}
	}
}

// TestDequantizeLengths checks that wrong lengths are errors naming the
// type, the block size and the lengths, never panics, and leave dst alone.
func TestDequantizeLengths(t *testing.T) {
	cases := []struct {
		t      Type
		src, n int
		ok     bool
		msg    string // substring of the error
	}{
		{Q4_0, 18, 32, true, ""},
		{Q4_0, 36, 64, true, ""},
		{Q4_0, 0, 0, true, ""},
		{Q4_0, 18, 31, false, "31 values are not a multiple of the block size 32"},
		{Q4_0, 17, 32, false, "need 18 bytes (1 blocks of 32 values in 18 bytes), got 17"},
		{Q4_0, 19, 32, false, "got 19 bytes"},
		{Q4_K, 144, 256, true, ""},
		{Q4_K, 144, 255, false, "q4_K: 255 values are not a multiple of the block size 256"},
		{Q4_K, 288, 256, false, "need 144 bytes"},
		{F16, 6, 3, true, ""},
		{F16, 5, 3, false, "f16: 3 values need 6 bytes"},
		{F32, 4, 1, true, ""},
		{Q8_1, 36, 32, false, "no decoder for tensor type q8_1"},
		{I32, 4, 1, false, "no decoder for tensor type i32"},
		{Type(31), 0, 0, false, "no decoder for tensor type type(31)"},
		{Type(1000), 0, 0, false, "no decoder"},
	}
	for _, c := range cases {
		dst := make([]float32, c.n)
		for i := range dst {
			dst[i] = 42
		}
		err := Dequantize(c.t, make([]byte, c.src), dst)
		if (err == nil) != c.ok {
			t.Errorf("Dequantize(%s, %d bytes, %d values): err = %v, want ok = %v", c.t, c.src, c.n, err, c.ok)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("Dequantize(%s, %d bytes, %d values): %q does not say %q", c.t, c.src, c.n, err, c.msg)
			}
			for _, v := range dst {
				if v != 42 {
					t.Errorf("Dequantize(%s) wrote dst despite the error", c.t)
					break
				}
			}
		}
	}
}

// TestDequantizeRow decodes rows of a 3-row Q8_0 weight and checks the
// errors for rows out of range and bad row lengths.
func TestDequantizeRow(t *testing.T) {
	// 3 rows of 64 values = 2 blocks each; row r, block b has d = r+1 and
	// q[j] = j - 16 + b.
	const rowLen = 64
	var data []byte
	for r := 0; r < 3; r++ {
		for b := 0; b < 2; b++ {
			blk := make([]byte, 34)
			binary.LittleEndian.PutUint16(blk, F32ToF16(float32(r+1)))
			for j := 0; j < 32; j++ {
				blk[2+j] = byte(int8(j - 16 + b))
			}
			data = append(data, blk...)
		}
	}
	dst := make([]float32, rowLen)
	for r := 0; r < 3; r++ {
		if err := DequantizeRow(Q8_0, data, r, dst); err != nil {
			t.Fatal(err)
		}
		for i, v := range dst {
			if want := float32((i%32 - 16 + i/32) * (r + 1)); v != want {
				t.Fatalf("row %d value %d = %g, want %g", r, i, v, want)
			}
		}
	}
	for _, c := range []struct {
		row, n int
		data   []byte
		msg    string
	}{
		{3, rowLen, data, "row 3 of 68 bytes ends at byte 272, beyond the 204 bytes of data"},
		{-1, rowLen, data, "negative row index -1"},
		{0, 48, data, "row of 48 values of type q8_0 is not a multiple of its block size 32"},
		{1, rowLen, data[:100], "beyond the 100 bytes"},
	} {
		err := DequantizeRow(Q8_0, c.data, c.row, make([]float32, c.n))
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("DequantizeRow(row %d, %d values, %d bytes) = %v, want %q", c.row, c.n, len(c.data), err, c.msg)
		}
	}
	if err := DequantizeRow(Type(99), data, 0, dst); err == nil {
		t.Error("unknown type: no error")
	}
	if err := DequantizeRow(Q8_1, data, 0, dst); err == nil {
		t.Error("q8_1: no error")
	}
	if err := DequantizeRow(Q8_0, nil, 5, nil); err != nil {
		t.Errorf("empty row: %v", err)
	}
}

// TestDequantizeKnown decodes hand-made blocks whose values follow from the
// format descriptions alone.
func TestDequantizeKnown(t *testing.T) {
	one := binary.LittleEndian.AppendUint16(nil, 0x3c00) // float16 1.0
	half := binary.LittleEndian.AppendUint16(nil, 0x3800)
	nib := make([]byte, 16) // qs[j] = j | (15-j)<<4
	for j := range nib {
		nib[j] = byte(j) | byte(15-j)<<4
	}
	seq := func(f func(i int) float32, n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	lowHigh := func(i int) int { // the nibble holding value i of a 32-block
		if i < 16 {
			return i
		}
		return 15 - (i - 16)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	cases := []struct {
		name string
		t    Type
		src  []byte
		want []float32
	}{
		{"q4_0", Q4_0, cat(one, nib), seq(func(i int) float32 { return float32(lowHigh(i) - 8) }, 32)},
		{"q4_1", Q4_1, cat(half, one, nib), seq(func(i int) float32 { return float32(lowHigh(i))*0.5 + 1 }, 32)},
		{"q5_0/high bits set", Q5_0, cat(one, []byte{0xff, 0xff, 0xff, 0xff}, nib), seq(func(i int) float32 { return float32(lowHigh(i) + 16 - 16) }, 32)},
		{"q5_1/no high bits", Q5_1, cat(one, half, make([]byte, 4), nib), seq(func(i int) float32 { return float32(lowHigh(i)) + 0.5 }, 32)},
		{"q8_0", Q8_0, cat(half, seqBytes(32, func(i int) byte { return byte(int8(i - 16)) })), seq(func(i int) float32 { return float32(i-16) * 0.5 }, 32)},
		{"iq4_nl", IQ4_NL, cat(one, nib), seq(func(i int) float32 { return float32(kvaluesIQ4NL[lowHigh(i)]) }, 32)},
		{"mxfp4/e=128", MXFP4, cat([]byte{128}, nib), seq(func(i int) float32 { return float32(kvaluesMXFP4[lowHigh(i)]) }, 32)},
		{"mxfp4/e=130", MXFP4, cat([]byte{130}, nib), seq(func(i int) float32 { return 4 * float32(kvaluesMXFP4[lowHigh(i)]) }, 32)},
		{"mxfp4/e=0", MXFP4, cat([]byte{0}, nib), seq(func(i int) float32 { return 0x1p-128 * float32(kvaluesMXFP4[lowHigh(i)]) }, 32)},
		// TQ2_0: every byte 0b11100100 holds the codes 0,1,2,3 -> -1,0,1,2.
		{"tq2_0", TQ2_0, cat(seqBytes(64, func(int) byte { return 0xe4 }), one), seq(func(i int) float32 { return float32((i/32)%4 - 1) }, 256)},
		// Q8_K: d = 0.25 as float32.
		{"q8_K", Q8_K, cat(binary.LittleEndian.AppendUint32(nil, math.Float32bits(0.25)), seqBytes(256, func(i int) byte { return byte(int8(i - 128)) }), make([]byte, 32)),
			seq(func(i int) float32 { return float32(i-128) * 0.25 }, 256)},
		{"bf16", BF16, []byte{0x80, 0x3f, 0x00, 0xc0}, []float32{1, -2}},
		{"f16", F16, cat(one, half), []float32{1, 0.5}},
		{"f32", F32, binary.LittleEndian.AppendUint32(nil, math.Float32bits(-3.5)), []float32{-3.5}},
	}
	for _, c := range cases {
		got := make([]float32, len(c.want))
		if err := Dequantize(c.t, c.src, got); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(c.want[i]) {
				t.Errorf("%s: value %d = %g, want %g", c.name, i, got[i], c.want[i])
				break
			}
		}
	}
}

// seqBytes returns n bytes f(0), f(1), ...
func seqBytes(n int, f func(int) byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = f(i)
	}
	return b
}

// TestDequantizeZeroScale: a zero scale gives (signed) zeros in every type.
func TestDequantizeZeroScale(t *testing.T) {
	for _, ty := range Types() {
		if !CanDequantize(ty) || !ty.Quantized() {
			continue
		}
		// All-zero bytes: every scale field is 0 (IQ1_M's too).
		got := make([]float32, 2*ty.BlockSize())
		if err := Dequantize(ty, make([]byte, 2*ty.BlockBytes()), got); err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			if v != 0 {
				t.Errorf("%s: value %d of zero blocks = %g", ty, i, v)
				break
			}
		}
	}
}

// FuzzDequantize feeds arbitrary bytes and lengths to every decoder: errors
// are fine, panics are not, and DequantizeRow must agree with Dequantize.
func FuzzDequantize(f *testing.F) {
	f.Add(uint8(Q4_K), uint16(256), make([]byte, 144))
	f.Add(uint8(IQ1_M), uint16(512), make([]byte, 112))
	f.Add(uint8(Q8_0), uint16(33), make([]byte, 34))
	f.Add(uint8(F16), uint16(3), []byte{1, 2, 3, 4, 5, 6})
	if golden, err := readDequantGolden(filepath.Join("testdata", "dequant")); err == nil {
		for _, g := range golden {
			ty, err := ParseType(strings.TrimSuffix(g.file, ".bin"))
			q, rerr := os.ReadFile(filepath.Join("testdata", "dequant", g.file))
			if err == nil && rerr == nil {
				f.Add(uint8(ty), uint16(g.n), q)
			}
		}
	}
	f.Fuzz(func(t *testing.T, ty uint8, n uint16, data []byte) {
		dst := make([]float32, n)
		err := Dequantize(Type(ty), data, dst)
		if err != nil {
			return
		}
		row := make([]float32, n)
		doubled := append(append([]byte{}, data...), data...)
		if err := DequantizeRow(Type(ty), doubled, 1, row); err != nil && n > 0 {
			t.Fatalf("DequantizeRow failed where Dequantize did not: %v", err)
		}
		for i := range row {
			if math.Float32bits(row[i]) != math.Float32bits(dst[i]) {
				t.Fatalf("DequantizeRow value %d = %g, Dequantize %g", i, row[i], dst[i])
			}
		}
	})
}

// BenchmarkDequantize decodes a 4096x4 weight slice of several types.
func BenchmarkDequantize(b *testing.B) {
	for _, ty := range []Type{F16, Q4_0, Q8_0, Q4_K, Q6_K, IQ2_XXS, IQ4_XS} {
		b.Run(ty.String(), func(b *testing.B) {
			dst := make([]float32, 4*4096)
			src := make([]byte, len(dst)/ty.BlockSize()*ty.BlockBytes())
			for i := range src {
				src[i] = byte(i * 7)
			}
			b.SetBytes(int64(4 * len(dst)))
			for b.Loop() {
				if err := Dequantize(ty, src, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
