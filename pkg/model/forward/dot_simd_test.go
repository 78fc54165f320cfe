package forward

import (
	"encoding/binary"
	"math"
	"math/rand"
	"slices"
	"testing"
	"unsafe"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// randF16 returns a random finite float16 bit pattern (any exponent,
// subnormals included).
func randF16(r *rand.Rand) uint16 {
	for {
		h := uint16(r.Intn(1 << 16))
		if h&0x7c00 != 0x7c00 {
			return h
		}
	}
}

// TestDotQ8_0SIMDMatchesGo checks that the assembly Q8_0·Q8_0 kernel gives
// the bits of the portable one, with scales from subnormal to the largest
// float16 and -128 quants: in the weights the kernel is exact, in the
// activations it declines (its sign trick would wrap) and dotQ8_0 falls
// back to the portable kernel.
func TestDotQ8_0SIMDMatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(1))
	for _, nb := range []int{1, 2, 3, 7, 64, 176} {
		for trial := 0; trial < 200; trial++ {
			x := make([]byte, 34*nb)
			y := make([]byte, 34*nb)
			for b := 0; b < nb; b++ {
				binary.LittleEndian.PutUint16(x[34*b:], randF16(r))
				binary.LittleEndian.PutUint16(y[34*b:], randF16(r))
				if trial%3 == 0 { // realistic scales
					binary.LittleEndian.PutUint16(x[34*b:], toF16(r.Float32()*0.01))
					binary.LittleEndian.PutUint16(y[34*b:], toF16(r.Float32()*0.1))
				}
				for i := 2; i < 34; i++ {
					x[34*b+i] = byte(r.Intn(256))
					y[34*b+i] = byte(r.Intn(256))
					if trial%5 == 1 {
						x[34*b+i] = 0x80
					}
					if trial%2 == 0 && y[34*b+i] == 0x80 {
						y[34*b+i] = 0x81
					}
				}
			}
			n := 32 * nb
			has128 := false
			for b := 0; b < nb; b++ {
				for i := 2; i < 34; i++ {
					has128 = has128 || y[34*b+i] == 0x80
				}
			}
			if _, ok := dotQ8_0SIMD(n, x, y); ok == has128 {
				t.Fatalf("nb=%d trial %d: dotQ8_0SIMD ok=%v with -128 in y: %v", nb, trial, ok, has128)
			}
			got := dotQ8_0(n, x, y)
			want := dotQ8_0Go(n, x, y)
			if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
				t.Fatalf("nb=%d trial %d: SIMD %g (%08x), Go %g (%08x)", nb, trial, got, math.Float32bits(got), want, math.Float32bits(want))
			}
		}
	}
}

// TestDotQ4KSIMDMatchesGo checks the assembly Q4_K integer lanes against
// the portable ones on random super-blocks (any scale, min and quant bits).
func TestDotQ4KSIMDMatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(2))
	for _, nb := range []int{1, 2, 8, 70} {
		for trial := 0; trial < 300; trial++ {
			x := make([]byte, 144*nb)
			y := make([]byte, 292*nb)
			r.Read(x)
			r.Read(y)
			for b := 0; b < nb; b++ {
				binary.LittleEndian.PutUint16(x[144*b:], randF16(r))
				binary.LittleEndian.PutUint16(x[144*b+2:], randF16(r))
				binary.LittleEndian.PutUint32(y[292*b:], math.Float32bits(float32(r.NormFloat64())))
			}
			n := 256 * nb
			got, want := dotQ4KImpl(n, x, y, true), dotQ4KImpl(n, x, y, false)
			if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
				t.Fatalf("nb=%d trial %d: SIMD %g, Go %g", nb, trial, got, want)
			}
		}
	}
}

// TestDotQ6KSIMDMatchesGo checks the assembly Q6_K integer lanes against
// the portable ones on random super-blocks.
func TestDotQ6KSIMDMatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(3))
	for _, nb := range []int{1, 2, 8, 70} {
		for trial := 0; trial < 300; trial++ {
			x := make([]byte, 210*nb)
			y := make([]byte, 292*nb)
			r.Read(x)
			r.Read(y)
			for b := 0; b < nb; b++ {
				binary.LittleEndian.PutUint16(x[210*b+208:], randF16(r))
				binary.LittleEndian.PutUint32(y[292*b:], math.Float32bits(float32(r.NormFloat64())))
			}
			n := 256 * nb
			got, want := dotQ6KImpl(n, x, y, true), dotQ6KImpl(n, x, y, false)
			if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
				t.Fatalf("nb=%d trial %d: SIMD %g, Go %g", nb, trial, got, want)
			}
		}
	}
}

// TestDotQ8_0x4MatchesGo checks the four-column kernel against four calls
// of the portable kernel.
func TestDotQ8_0x4MatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(4))
	for _, nb := range []int{1, 3, 64} {
		for trial := 0; trial < 100; trial++ {
			x := make([]byte, 34*nb)
			r.Read(x)
			var y [4][]byte
			for c := range y {
				y[c] = make([]byte, 34*nb)
				r.Read(y[c])
				for i := range y[c] {
					if y[c][i] == 0x80 && i%34 >= 2 {
						y[c][i] = 0x7f
					}
				}
			}
			for b := 0; b < nb; b++ {
				binary.LittleEndian.PutUint16(x[34*b:], randF16(r))
				for c := range y {
					binary.LittleEndian.PutUint16(y[c][34*b:], randF16(r))
				}
			}
			if !q8_0Clean(y[:]) {
				t.Fatal("q8_0Clean rejected rows without -128")
			}
			out := make([]float32, 4)
			if !dotQ8_0x4(32*nb, x, &y, out) {
				t.Fatal("dotQ8_0x4 declined")
			}
			for c := range y {
				want := dotQ8_0Go(32*nb, x, y[c])
				if math.Float32bits(out[c]) != math.Float32bits(want) && !(want != want && out[c] != out[c]) {
					t.Fatalf("nb=%d trial %d col %d: x4 %g, Go %g", nb, trial, c, out[c], want)
				}
			}
			y[2][2+34*(nb-1)] = 0x80
			if q8_0Clean(y[:]) {
				t.Fatal("q8_0Clean accepted a -128 activation quant")
			}
			if dotQ8_0x4(32*nb, x, &y, make([]float32, 4)) {
				t.Fatal("dotQ8_0x4 accepted a -128 activation quant")
			}
		}
	}
}

// TestDotQ8_0x8PackedMatchesGo checks the eight-column kernel on packed
// activations against the portable kernel on each column, for every
// starting column of a ten-column set.
func TestDotQ8_0x8PackedMatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(8))
	for _, nb := range []int{1, 2, 5, 64, 176} {
		for trial := 0; trial < 40; trial++ {
			x := make([]byte, 34*nb)
			r.Read(x)
			rows := make([][]byte, 10)
			for c := range rows {
				rows[c] = make([]byte, 34*nb)
				r.Read(rows[c])
				for i := range rows[c] {
					if rows[c][i] == 0x80 && i%34 >= 2 {
						rows[c][i] = 0x81
					}
				}
			}
			for b := 0; b < nb; b++ {
				binary.LittleEndian.PutUint16(x[34*b:], randF16(r))
				for c := range rows {
					binary.LittleEndian.PutUint16(rows[c][34*b:], randF16(r))
				}
			}
			p := packQ8_0(rows, nb)
			for first := 0; first+8 <= len(rows); first++ {
				out := make([]float32, 8)
				if !dotQ8_0x8Packed(32*nb, x, p, first, out) {
					t.Fatal("dotQ8_0x8Packed declined")
				}
				for c := 0; c < 8; c++ {
					want := dotQ8_0Go(32*nb, x, rows[first+c])
					if math.Float32bits(out[c]) != math.Float32bits(want) {
						t.Fatalf("nb=%d trial %d column %d: x8 %g (%#x), Go %g (%#x)", nb, trial, first+c, out[c], math.Float32bits(out[c]), want, math.Float32bits(want))
					}
				}
			}
			if dotQ8_0x8Packed(32*nb, x, p, 3, make([]float32, 8)) {
				t.Fatal("dotQ8_0x8Packed read past the packed rows")
			}
		}
	}
}

// TestKRowDotsMatchGo checks the Q2_K to Q6_K, IQ4_XS and IQ2/IQ1 row kernels, which decode
// the weight row's scales once and take one to four activation columns per
// pass, against the portable dot of each column (random quants, scales,
// mins and block sums; Q8_K quants of -128, which no quantizer writes,
// included except for Q3_K).
func TestKRowDotsMatchGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(5))
	for _, typ := range []struct {
		t     quant.Type
		bsize int
		dOff  []int
		dot   func(n int, x, y []byte, simd bool) float32
	}{
		{quant.Q4_K, 144, []int{0, 2}, dotQ4KImpl},
		{quant.Q6_K, 210, []int{208}, dotQ6KImpl},
		{quant.IQ4_XS, 136, []int{0}, func(n int, x, y []byte, _ bool) float32 { return dotIQ4XS(n, x, y) }},
		{quant.Q3_K, 110, []int{108}, func(n int, x, y []byte, _ bool) float32 { return dotQ3_K(n, x, y) }},
		{quant.Q2_K, 84, []int{80, 82}, func(n int, x, y []byte, _ bool) float32 { return dotQ2_K(n, x, y) }},
		{quant.Q5_K, 176, []int{0, 2}, func(n int, x, y []byte, _ bool) float32 { return dotQ5_K(n, x, y) }},
		{quant.IQ2_XXS, 66, []int{0}, iqDotTest(quant.IQ2_XXS)},
		{quant.IQ2_XS, 74, []int{0}, iqDotTest(quant.IQ2_XS)},
		{quant.IQ2_S, 82, []int{0}, iqDotTest(quant.IQ2_S)},
		{quant.IQ1_S, 50, []int{0}, iqDotTest(quant.IQ1_S)},
		{quant.IQ1_M, 56, nil, iqDotTest(quant.IQ1_M)}, // d is spread over the scales' top nibbles
	} {
		var k kRowDots
		for _, nb := range []int{1, 3, 8, 22, 70} {
			for ncol := 1; ncol <= 4; ncol++ {
				for trial := 0; trial < 30; trial++ {
					x := make([]byte, typ.bsize*nb)
					r.Read(x)
					var y [4][]byte
					for c := 0; c < ncol; c++ {
						y[c] = make([]byte, 292*nb)
						r.Read(y[c])
					}
					for b := 0; b < nb; b++ {
						for _, o := range typ.dOff {
							binary.LittleEndian.PutUint16(x[typ.bsize*b+o:], randF16(r))
						}
						for c := 0; c < ncol; c++ {
							binary.LittleEndian.PutUint32(y[c][292*b:], math.Float32bits(float32(r.NormFloat64())))
							if typ.t == quant.Q3_K {
								// Q8_K quants are never -128, which the
								// sign trick on negative weights would wrap
								// (ggml's Q3_K kernel does not use it).
								for e := 4; e < 260; e++ {
									if y[c][292*b+e] == 0x80 {
										y[c][292*b+e] = 0x81
									}
								}
							}
						}
					}
					if !k.decode(typ.t, 256*nb, x) {
						t.Fatalf("%s: decode declined", typ.t)
					}
					out := make([]float32, ncol)
					if !k.dots(typ.t, x, &y, ncol, out) {
						t.Fatalf("%s: dots declined", typ.t)
					}
					for c := 0; c < ncol; c++ {
						want := typ.dot(256*nb, x, y[c], false)
						if math.Float32bits(out[c]) != math.Float32bits(want) && !(want != want && out[c] != out[c]) {
							t.Fatalf("%s nb=%d ncol=%d trial %d col %d: row kernel %g, Go %g", typ.t, nb, ncol, trial, c, out[c], want)
						}
					}
				}
			}
		}
		if !k.decode(typ.t, 256, make([]byte, typ.bsize)) {
			t.Fatalf("%s: decode declined", typ.t)
		}
		if k.dots(typ.t, make([]byte, typ.bsize), &[4][]byte{make([]byte, 291)}, 1, make([]float32, 1)) {
			t.Fatalf("%s: dots accepted a short activation row", typ.t)
		}
	}
}

// TestKRowMetaLayout pins the byte offsets dot_amd64.s reads the decoded
// Q4_K, Q6_K and IQ4_XS super-blocks at.
func TestKRowMetaLayout(t *testing.T) {
	var m4 q4KBlockMeta
	var m6 q6KBlockMeta
	var mi k8BlockMeta
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"q4K sv", unsafe.Offsetof(m4.sv), 0},
		{"q4K mins2", unsafe.Offsetof(m4.mins2), 256},
		{"q4K d", unsafe.Offsetof(m4.d), 288},
		{"q4K negDmin", unsafe.Offsetof(m4.negDmin), 292},
		{"q4K size", unsafe.Sizeof(m4), 296},
		{"q6K sv", unsafe.Offsetof(m6.sv), 0},
		{"q6K d", unsafe.Offsetof(m6.d), 256},
		{"q6K size", unsafe.Sizeof(m6), 264},
		{"k8 q", unsafe.Offsetof(mi.q), 0},
		{"k8 sv", unsafe.Offsetof(mi.sv), 256},
		{"k8 d", unsafe.Offsetof(mi.d), 512},
		{"k8 negDmin", unsafe.Offsetof(mi.negDmin), 516},
		{"k8 mins", unsafe.Offsetof(mi.mins), 520},
		{"k8 size", unsafe.Sizeof(mi), 552},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, the assembly expects %d", c.name, c.got, c.want)
		}
	}
}

// TestTinyX4MatchesGo checks the four-column tinyBLAS kernels for F32,
// F16 and BF16 weights against dotF32Tiny, dotF16Tiny and dotBF16Tiny of
// each column, bit for bit (random values, a few infinities and NaNs:
// NaN results need only agree on being NaN).
func TestTinyX4MatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(11))
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
	}
	special := func(v float32) float32 {
		switch r.Intn(400) {
		case 0:
			return float32(math.Inf(1))
		case 1:
			return float32(math.NaN())
		}
		return v
	}
	for _, n := range []int{8, 16, 64, 72, 256, 2048, 2052} {
		for trial := 0; trial < 40; trial++ {
			a32 := make([]float32, n)
			var b32 [4][]float32
			a16 := make([]uint16, n)
			var b16 [4][]uint16
			for i := range a32 {
				a32[i] = special(float32(r.NormFloat64()))
				a16[i] = randF16(r)
			}
			for c := range b32 {
				b32[c] = make([]float32, n)
				b16[c] = make([]uint16, n)
				for i := range b32[c] {
					b32[c][i] = special(float32(r.NormFloat64()))
					b16[c][i] = randF16(r)
				}
			}
			// two rows at once: a and its reverse
			a32r := slices.Clone(a32)
			slices.Reverse(a32r)
			a16r := slices.Clone(a16)
			slices.Reverse(a16r)
			out8 := make([]float32, 8)
			if !tinyX2x4(tinyF32, n, unsafe.Pointer(&a32[0]), unsafe.Pointer(&a32r[0]), &b32, out8) {
				t.Fatal("tinyX2x4 declined")
			}
			for c := 0; c < 4; c++ {
				if w0, w1 := dotF32Tiny(a32, b32[c]), dotF32Tiny(a32r, b32[c]); !same(out8[c], w0) || !same(out8[4+c], w1) {
					t.Fatalf("F32 two rows n=%d trial %d col %d: %g %g, Go %g %g", n, trial, c, out8[c], out8[4+c], w0, w1)
				}
			}
			out := make([]float32, 4)
			if !dotF32Tinyx4(a32, &b32, out) {
				t.Fatal("dotF32Tinyx4 declined")
			}
			for c := range out {
				if want := dotF32Tiny(a32, b32[c]); !same(out[c], want) {
					t.Fatalf("F32 n=%d trial %d col %d: kernel %g (%#x), Go %g (%#x)", n, trial, c, out[c], math.Float32bits(out[c]), want, math.Float32bits(want))
				}
			}
			for _, bf := range []bool{false, true} {
				var bcols [4][]float32
				for c := range bcols {
					bcols[c] = make([]float32, n)
					for i, h := range b16[c] {
						bcols[c][i] = f16Table[h]
						if bf {
							bcols[c][i] = bf16(h)
						}
					}
				}
				kind := tinyF16
				if bf {
					kind = tinyBF16
				}
				if !tinyX2x4(kind, n, unsafe.Pointer(&a16[0]), unsafe.Pointer(&a16r[0]), &bcols, out8) {
					t.Fatal("tinyX2x4 declined")
				}
				for c := 0; c < 4; c++ {
					w0, w1 := dotF16Tiny(a16, b16[c]), dotF16Tiny(a16r, b16[c])
					if bf {
						w0, w1 = dotBF16Tiny(a16, b16[c]), dotBF16Tiny(a16r, b16[c])
					}
					if !same(out8[c], w0) || !same(out8[4+c], w1) {
						t.Fatalf("bf16=%v two rows n=%d trial %d col %d: %g %g, Go %g %g", bf, n, trial, c, out8[c], out8[4+c], w0, w1)
					}
				}
				if !dotF16Tinyx4(a16, &bcols, bf, out) {
					t.Fatal("dotF16Tinyx4 declined")
				}
				for c := range out {
					want := dotF16Tiny(a16, b16[c])
					if bf {
						want = dotBF16Tiny(a16, b16[c])
					}
					if !same(out[c], want) {
						t.Fatalf("bf16=%v n=%d trial %d col %d: kernel %g (%#x), Go %g (%#x)", bf, n, trial, c, out[c], math.Float32bits(out[c]), want, math.Float32bits(want))
					}
				}
			}
		}
	}
	if dotF16Tinyx4(make([]uint16, 16), &[4][]float32{make([]float32, 16), make([]float32, 16), make([]float32, 16), make([]float32, 8)}, false, make([]float32, 4)) {
		t.Error("dotF16Tinyx4 accepted a short column")
	}
}

// TestExpandQ0 checks the Q8_0 expansion of Q4_0, Q5_0 and IQ4_NL rows
// against their unpack functions, block by block (random bytes).
func TestExpandQ0(t *testing.T) {
	r := rand.New(rand.NewSource(13))
	for _, c := range []struct {
		t      quant.Type
		bs     int
		unpack func([]byte, *[32]int8) float32
	}{
		{quant.Q4_0, 18, unpackQ4_0}, {quant.Q5_0, 22, unpackQ5_0}, {quant.IQ4_NL, 18, unpackIQ4NL},
	} {
		for _, nb := range []int{1, 2, 7, 64} {
			x := make([]byte, nb*c.bs)
			r.Read(x)
			dst := make([]byte, nb*34)
			expandQ0(c.t, x, dst)
			for b := 0; b < nb; b++ {
				var q [32]int8
				c.unpack(x[b*c.bs:], &q)
				o := dst[b*34:]
				if o[0] != x[b*c.bs] || o[1] != x[b*c.bs+1] {
					t.Fatalf("%s block %d: scale %#x %#x, want %#x %#x", c.t, b, o[0], o[1], x[b*c.bs], x[b*c.bs+1])
				}
				for i, v := range q {
					if int8(o[2+i]) != v {
						t.Fatalf("%s block %d value %d: %d, want %d", c.t, b, i, int8(o[2+i]), v)
					}
				}
			}
		}
	}
}

// TestSummsQ1x8MatchesGo checks the eight-column summs kernel of Q4_1 and
// Q5_1 against summsQ1 per column, bit for bit.
func TestSummsQ1x8MatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(17))
	for _, nb := range []int{1, 2, 7, 64, 176} {
		const ncols = 11
		m := make([]float32, nb)
		s := make([][]float32, ncols)
		sp := make([]float32, nb*ncols)
		for b := range m {
			m[b] = float32(r.NormFloat64())
		}
		for c := range s {
			s[c] = make([]float32, nb)
			for b := range s[c] {
				s[c][b] = float32(r.NormFloat64() * 30)
				sp[b*ncols+c] = s[c][b]
			}
		}
		for first := 0; first+8 <= ncols; first++ {
			var out [8]float32
			if !summsQ1x8(m, sp, ncols, first, &out) {
				t.Fatal("summsQ1x8 declined")
			}
			for c := 0; c < 8; c++ {
				if want := summsQ1(m, s[first+c]); math.Float32bits(out[c]) != math.Float32bits(want) {
					t.Fatalf("nb=%d column %d: kernel %g, Go %g", nb, first+c, out[c], want)
				}
			}
		}
		var out [8]float32
		if summsQ1x8(m, sp, ncols, 4, &out) {
			t.Fatal("summsQ1x8 read past the last column")
		}
	}
}
