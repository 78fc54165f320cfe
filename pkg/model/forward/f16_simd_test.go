package forward

import (
	"math"
	"math/rand"
	"testing"
)

// randF16Any returns any float16 bit pattern, NaN and ±Inf one time in
// sixteen, else a finite one.
func randF16Any(r *rand.Rand) uint16 {
	if r.Intn(16) == 0 {
		return uint16(0x7c00|r.Intn(1<<10)) | uint16(r.Intn(2))<<15
	}
	return randF16(r)
}

// sameF32 compares float32 bits (NaN payloads included: the kernels and
// their portable models agree on them too).
func sameF32(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }

// sameF16 compares float16 bit patterns.
func sameF16(a, b uint16) bool { return a == b }

// TestF16KernelsMatchGo checks the flash-attention float16 kernels
// (f16_amd64.s) against their portable models: ggml_vec_dot_f16's
// accumulators, ggml_vec_mad_f16, ggml_vec_scale_f16 and the float16
// conversion, on random float16 data including subnormals, ±Inf and NaN,
// for lengths around the 8- and 32-element steps.
func TestF16KernelsMatchGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(7))
	for _, n := range []int{1, 7, 8, 9, 31, 32, 33, 64, 65, 96, 128, 200, 256} {
		for trial := 0; trial < 300; trial++ {
			a := make([]uint16, n)
			b := make([]uint16, n)
			for i := range a {
				if trial%3 == 0 {
					a[i], b[i] = randF16Any(r), randF16Any(r)
				} else { // moderate magnitudes: the usual case, no overflow
					a[i] = toF16(float32(r.NormFloat64()))
					b[i] = toF16(float32(r.NormFloat64()))
				}
			}
			// dot
			np := n &^ 31
			var got, want [4][8]float32
			if np > 0 && !dotF16Acc(np, a, b, &got) {
				t.Fatal("dotF16Acc declined")
			}
			vecDotF16Acc(np, a, b, &want)
			for j := range got {
				for k := range got[j] {
					if !sameF32(got[j][k], want[j][k]) {
						t.Fatalf("dot n=%d trial %d acc[%d][%d]: asm %v (%#x), Go %v (%#x)", n, trial, j, k, got[j][k], math.Float32bits(got[j][k]), want[j][k], math.Float32bits(want[j][k]))
					}
				}
			}
			// mad and scale
			v := float32(r.NormFloat64())
			if trial%5 == 0 {
				v = math.Float32frombits(r.Uint32())
			}
			y := append([]uint16(nil), b...)
			madF16(y, a, v)
			for i := range y {
				w := toF16(fma32(f16Table[a[i]], v, f16Table[b[i]]))
				if !sameF16(y[i], w) {
					t.Fatalf("mad n=%d trial %d [%d]: y %#04x x %#04x v %v: asm %#04x, Go %#04x", n, trial, i, b[i], a[i], v, y[i], w)
				}
			}
			y = append([]uint16(nil), b...)
			scaleF16(y, v)
			for i := range y {
				if w := toF16(f16Table[b[i]] * v); !sameF16(y[i], w) {
					t.Fatalf("scale n=%d trial %d [%d]: y %#04x v %v: asm %#04x, Go %#04x", n, trial, i, b[i], v, y[i], w)
				}
			}
			// conversion, over the whole float32 range
			src := make([]float32, n)
			for i := range src {
				src[i] = math.Float32frombits(r.Uint32())
				if trial%2 == 0 {
					src[i] = float32(r.NormFloat64() * 1e-5)
				}
			}
			dst := make([]uint16, n)
			toF16Slice(dst, src)
			for i := range dst {
				if w := toF16(src[i]); !sameF16(dst[i], w) {
					t.Fatalf("toF16 n=%d trial %d [%d]: %v (%#x): asm %#04x, Go %#04x", n, trial, i, src[i], math.Float32bits(src[i]), dst[i], w)
				}
			}
		}
	}
}

// TestSwigluKernelMatchesGo checks the SwiGLU assembly kernel against the
// per-lane Go model (vSilu(x)·g) on random inputs around every branch of
// ggml_v_expf: |n| ≤ 126, 126 < |n| ≤ 192 and beyond, both signs, zeros,
// subnormals, ±Inf and NaN.
func TestSwigluKernelMatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	r := rand.New(rand.NewSource(9))
	for trial := 0; trial < 4000; trial++ {
		n := 8 * (1 + r.Intn(8))
		x := make([]float32, n)
		g := make([]float32, n)
		for i := range x {
			switch r.Intn(8) {
			case 0:
				x[i] = float32(r.NormFloat64() * 100) // both special ranges
			case 1:
				x[i] = float32(r.NormFloat64() * 1000)
			case 2:
				x[i] = math.Float32frombits(r.Uint32()) // anything, NaN and Inf included
			case 3:
				x[i] = float32(r.NormFloat64() * 1e-40) // subnormal
			default:
				x[i] = float32(r.NormFloat64() * 4)
			}
			g[i] = float32(r.NormFloat64())
			if r.Intn(20) == 0 {
				g[i] = math.Float32frombits(r.Uint32())
			}
		}
		y := make([]float32, n)
		if got := swigluPrefix(y, x, g); got != n {
			t.Fatalf("swigluPrefix did %d of %d", got, n)
		}
		for i := range y {
			want := vSilu(x[i]) * g[i]
			if math.Float32bits(y[i]) != math.Float32bits(want) {
				t.Fatalf("x %v (%#x) g %v: asm %v (%#x), Go %v (%#x)", x[i], math.Float32bits(x[i]), g[i], y[i], math.Float32bits(y[i]), want, math.Float32bits(want))
			}
		}
	}
}

// TestFromF16KernelMatchesTable converts every float16 bit pattern with the
// F16C kernel and compares the float32 bits, NaN payloads included, with
// f16Table (ggml's conversion).
func TestFromF16KernelMatchesTable(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 kernel on this CPU/build")
	}
	src := make([]uint16, 1<<16+5) // a tail the kernel leaves
	for i := range src {
		src[i] = uint16(i)
		if i >= 1<<16 {
			src[i] = 0x3c00 // 1.0, must stay unconverted
		}
	}
	dst := make([]float32, len(src))
	n := fromF16Prefix(dst, src)
	if n != 1<<16 {
		t.Fatalf("kernel converted %d values, want %d", n, 1<<16)
	}
	for i := 0; i < n; i++ {
		if math.Float32bits(dst[i]) != math.Float32bits(f16Table[src[i]]) {
			t.Fatalf("%#04x: kernel %#08x, table %#08x", src[i], math.Float32bits(dst[i]), math.Float32bits(f16Table[src[i]]))
		}
	}
	if dst[n] != 0 {
		t.Error("kernel wrote past the prefix")
	}
}
