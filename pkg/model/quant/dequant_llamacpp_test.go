//go:build llamacpp

package quant

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
)

var updateDequant = flag.Bool("update-dequant", false, "rewrite testdata/dequant from llama.cpp")

// dequantTestTypes is every type Dequantize supports, in enum order.
func dequantTestTypes() []Type {
	var ts []Type
	for _, t := range Types() {
		if CanDequantize(t) {
			ts = append(ts, t)
		}
	}
	return ts
}

// TestDequantTypeSizesLlamacpp checks model.Type's name, block size and
// block bytes against ggml for every type.
func TestDequantTypeSizesLlamacpp(t *testing.T) {
	for _, ty := range Types() {
		if got, want := ty.String(), llamacpp.TypeName(int(ty)); got != want {
			t.Errorf("type %d: name %q, ggml says %q", ty, got, want)
		}
		if got, want := ty.BlockSize(), llamacpp.BlockSize(int(ty)); got != want {
			t.Errorf("%s: block size %d, ggml says %d", ty, got, want)
		}
		if got, want := ty.BlockBytes(), llamacpp.TypeSize(int(ty)); got != want {
			t.Errorf("%s: block bytes %d, ggml says %d", ty, got, want)
		}
	}
}

// dequantRow makes n values like a weight row: normal with a per-row scale,
// a few outliers (x30) and zeros, and one block of zeros when there are
// several blocks.
func dequantRow(r *rand.Rand, n, bs int) []float32 {
	scale := float32(math.Pow(10, r.Float64()*4-3)) // 1e-3 .. 10
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64()) * scale
		switch u := r.Float64(); {
		case u < 0.01:
			x[i] *= 30
		case u < 0.03:
			x[i] = 0
		}
	}
	if n/bs >= 3 {
		b := 1 + r.IntN(n/bs-1)
		clear(x[b*bs : (b+1)*bs])
	}
	return x
}

// llamaDequant is ggml's to_float for t (the source itself for F32, which
// has none; dequantize_row_q8_K for Q8_K, which is not in the traits).
func llamaDequant(t Type, q []byte, n int) ([]float32, error) {
	switch t {
	case F32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(q[4*i:]))
		}
		return out, nil
	case Q8_K:
		return llamacpp.DequantizeQ8K(q, n)
	}
	return llamacpp.ToFloat(int(t), q, n)
}

// llamaQuant quantizes nrows rows with llama.cpp: ggml_quantize_chunk, or the
// CPU from_float for Q8_K (ggml_quantize_chunk has no case for it).
func llamaQuant(t Type, x []float32, nrows, nPerRow int) ([]byte, error) {
	if t == Q8_K {
		return llamacpp.CPUFromFloat(int(t), x)
	}
	return llamacpp.QuantizeChunk(int(t), x, nrows, nPerRow)
}

// sameBits reports the first index where a and b differ in bits.
func sameBits(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i, false
		}
	}
	return 0, true
}

// TestDequantLlamacpp quantizes random rows with llama.cpp, dequantizes them
// with llama.cpp and with Dequantize, and demands identical bits, for every
// type, several row lengths (one block, several blocks, long rows) and
// several rows at once; DequantizeRow must return each row's slice.
func TestDequantLlamacpp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, ty := range dequantTestTypes() {
		t.Run(ty.String(), func(t *testing.T) {
			bs := ty.BlockSize()
			lengths := []int{32, 64, 96, 320, 4096}
			if bs == 256 {
				lengths = []int{256, 512, 1792}
			} else if bs == 1 {
				lengths = []int{1, 7, 32, 1000}
			}
			total := 0
			for _, n := range lengths {
				const nrows = 3
				x := make([]float32, 0, nrows*n)
				for range nrows {
					x = append(x, dequantRow(r, n, max(bs, 32))...)
				}
				q, err := llamaQuant(ty, x, nrows, n)
				if err != nil {
					t.Fatal(err)
				}
				want, err := llamaDequant(ty, q, nrows*n)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]float32, nrows*n)
				if err := Dequantize(ty, q, got); err != nil {
					t.Fatal(err)
				}
				if i, ok := sameBits(got, want); !ok {
					t.Fatalf("row length %d: value %d (block %d): got %g (%#08x), llama.cpp %g (%#08x)",
						n, i, i/bs, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
				row := make([]float32, n)
				for k := 0; k < nrows; k++ {
					if err := DequantizeRow(ty, q, k, row); err != nil {
						t.Fatal(err)
					}
					if i, ok := sameBits(row, want[k*n:(k+1)*n]); !ok {
						t.Fatalf("DequantizeRow(%d) of length %d: value %d differs", k, n, i)
					}
				}
				total += nrows * n
			}
			t.Logf("%d values bit-identical", total)
		})
	}
}

// dequantRandomBlocks returns nb blocks of random bytes for t. With
// finiteScales, the float16/float32 scale fields are redrawn until finite,
// so that no NaN or Inf reaches the arithmetic.
func dequantRandomBlocks(r *rand.Rand, t Type, nb int, finiteScales bool) []byte {
	bb := t.BlockBytes()
	q := make([]byte, nb*bb)
	for i := range q {
		q[i] = byte(r.Uint32())
	}
	if !finiteScales {
		return q
	}
	f16At := map[Type][]int{
		F16: {0}, Q4_0: {0}, Q4_1: {0, 2}, Q5_0: {0}, Q5_1: {0, 2}, Q8_0: {0},
		Q2_K: {80, 82}, Q3_K: {108}, Q4_K: {0, 2}, Q5_K: {0, 2}, Q6_K: {208},
		TQ1_0: {52}, TQ2_0: {64}, IQ2_XXS: {0}, IQ2_XS: {0}, IQ2_S: {0},
		IQ3_XXS: {0}, IQ3_S: {0}, IQ1_S: {0}, IQ4_NL: {0}, IQ4_XS: {0},
	}[t]
	for b := 0; b < nb; b++ {
		blk := q[b*bb : (b+1)*bb]
		for _, off := range f16At {
			for blk[off+1]&0x7c == 0x7c { // exponent all ones
				blk[off+1] = byte(r.Uint32())
			}
		}
		switch t {
		case F32, Q8_K:
			for blk[3]&0x7f == 0x7f && blk[2]&0x80 != 0 {
				blk[3] = byte(r.Uint32())
			}
		case BF16:
			for blk[1]&0x7f == 0x7f && blk[0]&0x80 != 0 {
				blk[1] = byte(r.Uint32())
			}
		case IQ1_M: // the scale is the top nibbles of the four u16 at 48
			for blk[55]&0x7c == 0x7c {
				blk[55] = byte(r.Uint32())
			}
		}
	}
	return q
}

// TestDequantRandomBlocksLlamacpp feeds random bytes (every bit pattern is a
// valid block) to llama.cpp's to_float and to Dequantize. Enough blocks are
// used that every grid and table entry is hit, so the ported i-quant tables
// are checked entry by entry. The first pass keeps scales finite; the second
// lets float16 scales be NaN or Inf. Both demand identical bits, NaNs
// included, except where Q2_K meets two NaNs at once.
func TestDequantRandomBlocksLlamacpp(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, finite := range []bool{true, false} {
		for _, ty := range dequantTestTypes() {
			name := ty.String()
			if !finite {
				name += "/nan-inf"
			}
			t.Run(name, func(t *testing.T) {
				nb := 4096
				if ty.BlockSize() == 1 {
					nb = 1 << 16
				}
				q := dequantRandomBlocks(r, ty, nb, finite)
				n := nb * ty.BlockSize()
				want, err := llamaDequant(ty, q, n)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]float32, n)
				if err := Dequantize(ty, q, got); err != nil {
					t.Fatal(err)
				}
				for i := range got {
					g, w := math.Float32bits(got[i]), math.Float32bits(want[i])
					if g == w {
						continue
					}
					// Q2_K with both d and dmin NaN: ggml's fused
					// -(dmin*m) + dl*q meets two NaNs, and which one an FMA
					// returns is up to the CPU (this AMD Zen 3 returns the
					// dmin one; Go's subtraction returns the other).
					if ty == Q2_K && got[i] != got[i] && want[i] != want[i] {
						continue
					}
					t.Fatalf("value %d (block %d): got %g (%#08x), llama.cpp %g (%#08x)",
						i, i/ty.BlockSize(), got[i], g, want[i], w)
				}
			})
		}
	}
}

// TestDequantHalfLlamacpp checks the float16/bfloat16 conversions against
// ggml: all 65536 patterns to float32, and float32 -> 16 bits on every
// 4099th float32 bit pattern plus all float16 midpoints and their neighbours.
func TestDequantHalfLlamacpp(t *testing.T) {
	all := make([]byte, 2*65536)
	for h := range 65536 {
		binary.LittleEndian.PutUint16(all[2*h:], uint16(h))
	}
	for _, ty := range []Type{F16, BF16} {
		want, err := llamacpp.ToFloat(int(ty), all, 65536)
		if err != nil {
			t.Fatal(err)
		}
		for h := range 65536 {
			got := F16ToF32(uint16(h))
			if ty == BF16 {
				got = BF16ToF32(uint16(h))
			}
			if math.Float32bits(got) != math.Float32bits(want[h]) {
				t.Fatalf("%s %#04x: got %#08x, ggml %#08x", ty, h, math.Float32bits(got), math.Float32bits(want[h]))
			}
		}
	}

	var xs []float32
	for b := uint64(0); b < 1<<32; b += 4099 {
		xs = append(xs, math.Float32frombits(uint32(b)))
	}
	for h := range 0x7c00 { // midpoints between neighbouring float16 (and bf16) values
		lo, hi := F16ToF32(uint16(h)), F16ToF32(uint16(h+1))
		mid := float32((float64(lo) + float64(hi)) / 2)
		for _, s := range []float32{1, -1} {
			xs = append(xs, s*mid, s*math.Nextafter32(mid, 0), s*math.Nextafter32(mid, 1e9))
		}
		blo := math.Float32frombits(uint32(h) << 16)
		bmid := math.Float32frombits(uint32(h)<<16 | 0x8000)
		xs = append(xs, blo, bmid, -bmid, math.Nextafter32(bmid, 0), math.Nextafter32(bmid, 1e30))
	}
	xs = append(xs, 65504, 65519.99, 65520, -65520, float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00000), math.Float32frombits(0xffc00001), math.Float32frombits(0x7f800001),
		math.Float32frombits(0x7fbfffff), 0x1p-25, 0x1p-24, 0x1.8p-25, 0x1.000002p-25)
	// ggml_cpu_fp32_to_fp16 uses F16C on groups of 4 and 8 only.
	for len(xs)%8 != 0 {
		xs = append(xs, 1)
	}

	check := func(name string, want []uint16, conv func(float32) uint16) {
		t.Helper()
		bad := 0
		for i, x := range xs {
			if got := conv(x); got != want[i] {
				if bad++; bad <= 5 {
					t.Errorf("%s(%g = %#08x): got %#04x, ggml %#04x", name, x, math.Float32bits(x), got, want[i])
				}
			}
		}
		if bad == 0 {
			t.Logf("%s: %d values identical", name, len(xs))
		}
	}
	check("F32ToF16", llamacpp.FP32ToFP16(xs), F32ToF16)
	check("F32ToF16HW", llamacpp.CPUFP32ToFP16(xs), F32ToF16HW)
	check("F32ToBF16", llamacpp.FP32ToBF16Ref(xs), F32ToBF16)
}

// TestDequantGoldenLlamacpp checks (or, with -update-dequant, writes) the
// fixtures that let the pure-Go TestDequantGolden prove bit-identity without
// llama.cpp: blocks quantized by llama.cpp and random-byte blocks, with the
// SHA-256 of the float32 values llama.cpp decodes them to.
func TestDequantGoldenLlamacpp(t *testing.T) {
	dir := filepath.Join("testdata", "dequant")
	r := rand.New(rand.NewPCG(5, 6))
	var lines []string
	for _, ty := range dequantTestTypes() {
		bs := max(ty.BlockSize(), 32)
		x := dequantRow(r, 4*bs, bs)
		q, err := llamaQuant(ty, x, 1, len(x))
		if err != nil {
			t.Fatal(err)
		}
		q = append(q, dequantRandomBlocks(r, ty, 8*bs/ty.BlockSize(), true)...)
		n := len(q) / ty.BlockBytes() * ty.BlockSize()
		want, err := llamaDequant(ty, q, n)
		if err != nil {
			t.Fatal(err)
		}
		file := ty.String() + ".bin"
		sum := sha256.Sum256(dqFloatBytes(want))
		lines = append(lines, fmt.Sprintf("%s %d %s", file, n, hex.EncodeToString(sum[:])))
		if *updateDequant {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, file), q, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if *updateDequant {
		text := "# file values sha256(float32 little-endian values from llama.cpp " + llamacpp.Commit + " to_float)\n" + strings.Join(lines, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, "expected.txt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	// Without -update-dequant, verify the stored fixtures still decode, in
	// llama.cpp, to the stored hashes.
	golden, err := readDequantGolden(dir)
	if err != nil {
		t.Skipf("no fixtures: %v", err)
	}
	for _, g := range golden {
		ty, err := ParseType(strings.TrimSuffix(g.file, ".bin"))
		if err != nil {
			t.Fatal(err)
		}
		q, err := os.ReadFile(filepath.Join(dir, g.file))
		if err != nil {
			t.Fatal(err)
		}
		want, err := llamaDequant(ty, q, g.n)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(dqFloatBytes(want))
		if hex.EncodeToString(sum[:]) != g.sha256 {
			t.Errorf("%s: llama.cpp's to_float no longer matches expected.txt", g.file)
		}
	}
}

// TestDequantTypesCoveredLlamacpp makes sure every type ggml can convert to
// float (type_traits.to_float) has a Go decoder, and vice versa.
func TestDequantTypesCoveredLlamacpp(t *testing.T) {
	for _, ty := range Types() {
		if ty == F32 || ty == Q8_K {
			continue // no to_float in ggml's traits, decoded here all the same
		}
		_, err := llamacpp.ToFloat(int(ty), make([]byte, ty.BlockBytes()), ty.BlockSize())
		if has := err == nil; has != CanDequantize(ty) {
			t.Errorf("%s: ggml to_float %v, CanDequantize %v", ty, has, CanDequantize(ty))
		}
	}
	if got := dequantTestTypes(); !slices.Contains(got, MXFP4) || !slices.Contains(got, IQ1_M) {
		t.Errorf("types under test: %v", got)
	}
}
