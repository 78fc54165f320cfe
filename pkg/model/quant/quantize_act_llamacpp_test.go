//go:build llamacpp

package quant

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
)

// TestQuantizeRowVecDotTypeLlamacpp checks VecDotType against ggml-cpu's
// type_traits_cpu for every type.
func TestQuantizeRowVecDotTypeLlamacpp(t *testing.T) {
	for _, ty := range Types() {
		if got, want := VecDotType(ty), Type(llamacpp.VecDotType(int(ty))); got != want {
			t.Errorf("VecDotType(%s) = %s, ggml-cpu says %s", ty, got, want)
		}
	}
}

// quantActCase is one input row for the activation quantizers.
type quantActCase struct {
	name string
	x    []float32
}

// quantActCases builds rows of n values (n a multiple of 256): random
// activations, rows whose values land exactly on k+0.5 after scaling (ties),
// all-zero blocks, blocks whose largest magnitude appears with both signs,
// tiny, huge and subnormal blocks.
func quantActCases(r *rand.Rand, n int) []quantActCase {
	var cs []quantActCase
	for _, scale := range []float32{1e-3, 0.1, 1, 30} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64()) * scale
			if r.IntN(50) == 0 {
				x[i] *= 20
			}
			if r.IntN(40) == 0 {
				x[i] = 0
			}
		}
		cs = append(cs, quantActCase{fmt.Sprintf("normal*%g", scale), x})
	}
	// Ties: each 32-value block (and so each 256-value block) has a value of
	// magnitude 127 (or 63.5), making the scale exactly 1 (or 2), and the
	// others are half-integers (or quarter-integers).
	for _, top := range []float32{127, 63.5} {
		x := make([]float32, n)
		for i := range x {
			k := float32(r.IntN(253) - 126) // -126..126
			x[i] = (k + 0.5) * top / 127
			if i%32 == 5 {
				x[i] = top
				if r.IntN(2) == 0 {
					x[i] = -top
				}
			}
		}
		cs = append(cs, quantActCase{fmt.Sprintf("ties/amax=%g", top), x})
	}
	// Both signs of the maximum: Q8_K takes the first one's sign.
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
		if i%256 == 10 {
			x[i] = -9
		}
		if i%256 == 200 {
			x[i] = 9
		}
	}
	cs = append(cs, quantActCase{"max-both-signs", x})
	// All zeros, and a zero block between random ones.
	cs = append(cs, quantActCase{"zeros", make([]float32, n)})
	x = make([]float32, n)
	for i := range x {
		if i/256 != 1 {
			x[i] = float32(r.NormFloat64())
		}
	}
	cs = append(cs, quantActCase{"zero-block", x})
	// Extreme magnitudes: tiny (the float16 scale underflows), subnormal
	// (127/amax overflows to +Inf), huge.
	for _, mag := range []float32{1e-9, 1e-40, 1e30, 3e38} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64()) * mag
		}
		cs = append(cs, quantActCase{fmt.Sprintf("magnitude=%g", mag), x})
	}
	return cs
}

// TestQuantizeRowLlamacpp compares QuantizeRow with ggml-cpu's from_float
// (QuantCPU: the AVX2 code this machine runs) and with ggml's from_float_ref
// (QuantRef), byte for byte, for the activation types.
func TestQuantizeRowLlamacpp(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{256, 1024, 4352} {
		cases := quantActCases(r, n)
		for _, ty := range []Type{F32, F16, BF16, Q8_0, Q8_1, Q8_K} {
			for _, v := range []QuantVariant{QuantCPU, QuantRef} {
				for _, c := range cases {
					var want []byte
					var err error
					if v == QuantCPU {
						want, err = llamacpp.CPUFromFloat(int(ty), c.x)
					} else {
						if ty == F32 || ty == Q8_K {
							continue // no from_float_ref in ggml's traits
						}
						want, err = llamacpp.FromFloatRef(int(ty), c.x)
					}
					if err != nil {
						t.Fatal(err)
					}
					got := make([]byte, len(want))
					if err := QuantizeRow(ty, c.x, got, v); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						i := 0
						for got[i] == want[i] {
							i++
						}
						bb := ty.BlockBytes()
						t.Errorf("%s/%s/%s/n=%d: byte %d (block %d, offset %d) differs\n got  % x\n want % x",
							ty, v, c.name, n, i, i/bb, i%bb, got[i/bb*bb:i/bb*bb+bb], want[i/bb*bb:i/bb*bb+bb])
					}
				}
			}
		}
	}
}

// TestQuantizeRowNaNLlamacpp checks the AVX2 quantizers on blocks holding
// NaN and ±Inf: the x86 max reduction, CVTPS2DQ's integer indefinite and the
// saturating packs decide these bytes.
func TestQuantizeRowNaNLlamacpp(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	specials := []float32{float32(math.NaN()), math.Float32frombits(0xffc12345), float32(math.Inf(1)), float32(math.Inf(-1))}
	for trial := 0; trial < 200; trial++ {
		x := make([]float32, 256)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for k := 0; k <= trial%4; k++ {
			x[r.IntN(256)] = specials[r.IntN(len(specials))]
		}
		for _, ty := range []Type{Q8_0, Q8_1, Q8_K, F16, BF16} {
			if ty == F16 {
				// ggml_cpu_fp32_to_fp16 converts the last n%4 values
				// differently: test a row with such a tail.
				x = x[:255]
				x[253] = math.Float32frombits(0x7fa12345) // signalling NaN
				x[254] = math.Float32frombits(0xffc12345)
			}
			want, err := llamacpp.CPUFromFloat(int(ty), x)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(want))
			if err := QuantizeRow(ty, x, got, QuantCPU); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s trial %d: got\n% x\nwant\n% x", ty, trial, got, want)
			}
		}
	}
}

// TestQuantizeRowQ8KFusedLlamacpp shows that the FMA matters: on blocks
// built so that iscale*x rounds to a tie in float32 but is not one exactly
// (q8KNearTies), the unfused QuantRef Q8_K differs from what ggml-cpu
// computes here, and QuantCPU matches it.
func TestQuantizeRowQ8KFusedLlamacpp(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	x := q8KNearTies(r, 64)
	want, err := llamacpp.CPUFromFloat(int(Q8_K), x)
	if err != nil {
		t.Fatal(err)
	}
	cpu := make([]byte, len(want))
	ref := make([]byte, len(want))
	if err := QuantizeRowQ8_K(x, cpu, QuantCPU); err != nil {
		t.Fatal(err)
	}
	if err := QuantizeRowQ8_K(x, ref, QuantRef); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cpu, want) {
		t.Fatal("QuantCPU differs from ggml-cpu's quantize_row_q8_K")
	}
	diff := 0
	for i := range ref {
		if ref[i] != want[i] {
			diff++
		}
	}
	t.Logf("the unfused reference differs in %d of %d bytes", diff, len(want))
	if diff == 0 {
		t.Error("expected the unfused rounding to differ somewhere")
	}
}
