//go:build llamacpp

package forward

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// iq3tqTypes are the weight types of dot_iq3tq.go and mxfp4.go.
var iq3tqTypes = []quant.Type{quant.IQ3_XXS, quant.IQ3_S, quant.TQ1_0, quant.TQ2_0, quant.MXFP4}

// iq3tqWeights returns nrows rows of n values of type t: quantized by
// llama.cpp (ggml_quantize_chunk) from normal values when random is
// false, else random bytes with sane block scales (TQ1_0's digit bytes
// and TQ2_0's 2-bit fields take every value, 3 included; MXFP4 exponents
// span 100..160, beyond float16's range at both ends).
func iq3tqWeights(t *testing.T, r *rand.Rand, typ quant.Type, nrows, n int, random bool) []byte {
	t.Helper()
	if !random {
		src := make([]float32, nrows*n)
		for i := range src {
			src[i] = float32(r.NormFloat64()) * 0.05
			if typ == quant.TQ1_0 || typ == quant.TQ2_0 {
				src[i] = float32(r.Intn(3)-1) * 0.05
			}
		}
		x, err := llamacpp.QuantizeChunk(int(typ), src, nrows, n)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	bs, per := typ.BlockBytes(), typ.BlockSize()
	x := make([]byte, nrows*n/per*bs)
	for i := range x {
		x[i] = byte(r.Intn(256))
	}
	for b := 0; b < len(x)/bs; b++ {
		xb := x[b*bs : (b+1)*bs]
		d := toF16(float32(r.Float64()*0.01 + 1e-4))
		switch typ {
		case quant.IQ3_XXS, quant.IQ3_S:
			binary.LittleEndian.PutUint16(xb, d)
		case quant.TQ1_0:
			binary.LittleEndian.PutUint16(xb[52:], d)
		case quant.TQ2_0:
			binary.LittleEndian.PutUint16(xb[64:], d)
		case quant.MXFP4:
			xb[0] = byte(100 + r.Intn(61))
			if b%3 != 0 { // large codes (6, 8, 12): large sums
				for j := 1; j < 17; j++ {
					xb[j] = byte(5+r.Intn(3)) | byte(5+r.Intn(3))<<4
				}
			}
		}
	}
	return x
}

// iq3tqActs returns ncol activation rows of n values quantized to the
// vec_dot_type of typ by this package's quantizer (ggml-cpu's from_float);
// with large, positive values near the block maximum (large products
// whose float rounding tells fused from unfused multiply-adds).
func iq3tqActs(t *testing.T, r *rand.Rand, typ quant.Type, ncol, n int, large bool) [][]byte {
	t.Helper()
	vdt := quant.VecDotType(typ)
	rb, err := vdt.RowBytes(int64(n))
	if err != nil {
		t.Fatal(err)
	}
	ys := make([][]byte, ncol)
	for c := range ys {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(r.NormFloat64())
			if large {
				src[i] = float32(0.8 + 0.2*r.Float64())
			}
		}
		ys[c] = make([]byte, rb)
		if err := quant.QuantizeRow(vdt, src, ys[c], quant.QuantCPU); err != nil {
			t.Fatal(err)
		}
	}
	return ys
}

// TestIQ3TQDotsMatchLlamaCpp compares every IQ3_XXS, IQ3_S, TQ1_0, TQ2_0
// and MXFP4 kernel here — the portable dot, the k8RowAVX2 row kernel
// (one to four columns) and MXFP4's even/odd Q8_0 path — with ggml-cpu's
// vec_dot of the in-build llama.cpp, bit for bit, on weights quantized by
// llama.cpp and on random bytes, for row lengths with one and several
// super-blocks (MXFP4: odd block counts for the scalar last block).
func TestIQ3TQDotsMatchLlamaCpp(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	checked := map[string]int{}
	for _, typ := range iq3tqTypes {
		ns := []int{256, 512, 2048}
		if typ == quant.MXFP4 {
			ns = []int{32, 64, 96, 288, 2048, 5632}
		}
		qdot, err := quantDot(typ, kernVecDot)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			for _, random := range []bool{false, true} {
				const nrows, ncol = 4, 5
				x := iq3tqWeights(t, r, typ, nrows, n, random)
				ys := iq3tqActs(t, r, typ, ncol, n, random)
				rb := len(x) / nrows
				var krow kRowDots
				var mxr mxfp4Row
				mxCols := splitMXFP4Cols(ys, n/32)
				for row := 0; row < nrows; row++ {
					xr := x[row*rb : (row+1)*rb]
					useK := krow.decode(typ, n, xr)
					useMX := typ == quant.MXFP4 && mxCols != nil && mxr.decode(xr, n/32)
					for c := 0; c < ncol; c++ {
						want, err := llamacpp.VecDot(int(typ), n, xr, ys[c])
						if err != nil {
							t.Fatal(err)
						}
						check := func(what string, got float32) {
							t.Helper()
							checked[typ.String()+" "+what]++
							if math.Float32bits(got) != math.Float32bits(want) {
								t.Errorf("%s n=%d random=%v row %d col %d: %s %v (%#x), llama.cpp %v (%#x)",
									typ, n, random, row, c, what, got, math.Float32bits(got), want, math.Float32bits(want))
							}
						}
						check("portable", qdot(n, xr, ys[c]))
						for nc := 1; nc <= 4 && c+nc <= ncol; nc++ {
							var ysc [4][]byte
							copy(ysc[:], ys[c:c+nc])
							out := make([]float32, 4)
							if useK && krow.dots(typ, xr, &ysc, nc, out) {
								check("row kernel", out[0])
							}
							if useMX && mxr.dots(mxCols, ys, c, nc, out) {
								check("even/odd Q8_0", out[0])
							}
						}
					}
				}
			}
		}
	}
	// every path ran (the fast ones where this CPU has them)
	for _, typ := range iq3tqTypes {
		paths := []string{"portable"}
		if hasAVX2 {
			paths = append(paths, "row kernel")
			if typ == quant.MXFP4 {
				paths[1] = "even/odd Q8_0"
			}
		}
		for _, p := range paths {
			if checked[typ.String()+" "+p] == 0 {
				t.Errorf("%s: the %s path was never compared", typ, p)
			}
		}
	}
	t.Logf("dots compared: %v", checked)
}

// TestIQ3TQVecDotTypes checks the activation type of each weight type
// against ggml-cpu's type_traits_cpu.
func TestIQ3TQVecDotTypes(t *testing.T) {
	for _, typ := range iq3tqTypes {
		if got, want := quant.VecDotType(typ), quant.Type(llamacpp.VecDotType(int(typ))); got != want {
			t.Errorf("%s: vec_dot_type %s, ggml-cpu %s", typ, got, want)
		}
	}
}

// TestIQ3TQTokenCountsMatchLlamaCpp runs the five types' fixtures with 3
// and 13 tokens (four-column passes and a remainder of 3 and 1 columns)
// and a 40-token prompt decoded in calls of 16 (remainders and a KV cache
// that grows), every node bit-identical to llama.cpp's.
func TestIQ3TQTokenCountsMatchLlamaCpp(t *testing.T) {
	toks := make([]int32, 40)
	for i := range toks {
		toks[i] = int32(1 + 37*i%500)
	}
	for _, ft := range fixtureTypes {
		if !slices.Contains(iq3tqTypes, mustType(ft.name)) {
			continue
		}
		path := fixturePath(t, "llama", ft.name, ft.ftype)
		for _, c := range []struct {
			n        int
			ubatches []int
		}{{3, nil}, {13, nil}, {40, []int{16, 16, 8}}} {
			t.Run(fmt.Sprintf("%s/T=%d", ft.name, c.n), func(t *testing.T) {
				opts := llamaOptions(t)
				opts.Threads = 2
				opts.UBatches = c.ubatches
				r := compareRun(t, path, toks[:c.n], opts)
				if r.same != r.nodes {
					t.Errorf("%d of %d nodes bit-identical; first: %v", r.same, r.nodes, r.diffs)
				}
			})
		}
	}
}

// mustType is quant.ParseType for a known name.
func mustType(name string) quant.Type {
	t, _ := quant.ParseType(name)
	return t
}
