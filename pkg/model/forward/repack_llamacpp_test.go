//go:build llamacpp

package forward

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// TestQuantMat4x8MatchesLlamaCpp: the repacked GEMMs' activation
// quantizers, ggml_quantize_mat_q8_0_4x8 (the same blocks as
// quantize_row_q8_0) and ggml_quantize_mat_q8_K_4x8 (quantQ8KMat), byte
// for byte on random rows, rows with ±amax ties and rows with
// double-rounding cases. Runs in every build (repack.cpp is always
// compiled).
func TestQuantMat4x8MatchesLlamaCpp(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const k = 256 * 8
	drTrials := 0
	differ := 0 // Q8_K bytes where ggml_quantize_mat_q8_K_4x8 is not quantize_row_q8_K
	for trial := 0; trial < 50; trial++ {
		var rows [4][]float32
		for i := range rows {
			rows[i] = make([]float32, k)
			scale := math.Ldexp(1, r.IntN(20)-10)
			for j := range rows[i] {
				rows[i][j] = float32(r.NormFloat64() * scale)
			}
		}
		// ties of ±amax in some blocks, zero blocks, a block with few levels
		if trial%2 == 1 {
			rows[0][5], rows[0][77] = -9, 9
			rows[1][256+3], rows[1][256+4] = 7, -7
			clear(rows[2][512:768])
			for j := 768; j < 1024; j++ {
				rows[3][j] = float32(j%5) - 2
			}
		}
		// double rounding: values whose float32 product with iscale is a
		// tie the exact product is not (see TestQuantQ8KMat)
		if trial%5 == 0 {
			b := rows[1][1024:1280]
			amax := float32(0)
			for _, v := range b {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			iscale := 127 / amax // ggml_quantize_mat_q8_K_4x8's: negative when +amax occurs
			if hasPositive(b, amax) {
				iscale = -iscale
			}
			n := 0
			for kk := -120; kk < 120 && n < 8; kk++ {
				v := float32((float64(kk) + 0.5) / float64(iscale))
				for step := 0; step < 64; step++ {
					p := float32(v * iscale)
					if math.Abs(float64(v)) < float64(amax) && float64(p) == float64(kk)+0.5 && math.RoundToEven(float64(v)*float64(iscale)) != math.RoundToEven(float64(p)) {
						b[10+n] = v
						n++
						break
					}
					v = math.Nextafter32(v, 0)
				}
			}
			if n == 0 {
				t.Fatalf("trial %d: no double-rounding value found", trial)
			}
			drTrials++
		}
		for _, vt := range []quant.Type{quant.Q8_0, quant.Q8_K} {
			got, err := llamacpp.QuantizeMat4x8(int(vt), rows)
			if err != nil {
				t.Fatal(err)
			}
			rb, _ := vt.RowBytes(k)
			for i, row := range rows {
				want := make([]byte, rb)
				if vt == quant.Q8_K {
					quantQ8KMat(row, want)
					other := make([]byte, rb)
					if err := quant.QuantizeRow(vt, row, other, quant.QuantCPU); err != nil {
						t.Fatal(err)
					}
					for o := range want {
						if want[o] != other[o] {
							differ++
						}
					}
				} else if err := quant.QuantizeRow(vt, row, want, quant.QuantCPU); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[i], want) {
					bb := vt.BlockBytes()
					for o := range want {
						if got[i][o] != want[o] {
							t.Fatalf("trial %d %s row %d: byte %d (block %d, offset %d): llama.cpp %#x, forward %#x", trial, vt, i, o, o/bb, o%bb, got[i][o], want[o])
						}
					}
				}
			}
		}
	}
	t.Logf("%d trials with double-rounding values; %d Q8_K bytes differ between ggml_quantize_mat_q8_K_4x8 and quantize_row_q8_K", drTrials, differ)
	if differ == 0 {
		t.Error("the ±amax ties and double roundings made no difference: not tested")
	}
}

// hasPositive reports whether +amax occurs in b.
func hasPositive(b []float32, amax float32) bool {
	for _, v := range b {
		if v == amax {
			return true
		}
	}
	return false
}

// TestRepackMatchesLlamaCpp compares every node with a REPACK build of the
// in-build llama.cpp (make test REPACK=1): each fixture architecture ×
// repacked types (Q4_0, Q4_K_M, IQ4_NL, Q2_K) and two that are not (Q8_0,
// Q6_K) × flash attention on/off × 1, 3, 6, 8 and 21 tokens (gemv only,
// gemm+gemv, the AVX-512 16-column tiles and their 4-column rest). Every
// tensor must be bit-identical under the in-build profile; under its base
// profile (the kernels without repack) the repacked types must differ —
// so the weights really went through the repack buffers — and the others
// must not. Also fixtures with rows not a multiple of 8 (ffn 500: not
// repacked) and of 16 (ffn 520).
func TestRepackMatchesLlamaCpp(t *testing.T) {
	prof := inBuildKernels()
	if !strings.HasSuffix(prof, "-repack") {
		t.Skipf("the in-build llama.cpp (%s) has no repack buffers: build with make test REPACK=1 (LAYERDIFF_REPACK=1)", prof)
	}
	if !Emulates(prof) {
		t.Skipf("the in-build llama.cpp's kernels (%s) are not emulated", prof)
	}
	base := reference.ProfileBase(prof)
	types := []struct {
		name     string
		ftype    int
		repacked bool
	}{
		{"q4_0", 2, true}, {"q4_k_m", 15, true}, {"iq4_nl", 25, true}, {"q2_k", 10, prof == KernelsAVX512Repack},
		{"q8_0", 7, false}, {"q6_k", 18, false},
	}
	toks := []int32{1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319}
	type shape struct {
		name string
		cfg  fixture.Config
	}
	var shapes []shape
	for _, arch := range fixture.Archs {
		shapes = append(shapes, shape{arch, fixture.Default(arch)})
	}
	ff520 := fixture.Default("qwen2")
	ff520.FF = 520
	ff500 := fixture.Default("llama")
	ff500.FF, ff500.VocabSize = 500, 500
	shapes = append(shapes, shape{"qwen2-ff520", ff520}, shape{"llama-ff500-v500", ff500})
	var report []string
	total, same := 0, 0
	for _, sh := range shapes {
		for _, ty := range types {
			odd := sh.name != sh.cfg.Arch
			if odd && (ty.name == "q8_0" || ty.name == "q6_k" || ty.name == "q4_0" || ty.name == "iq4_nl") {
				continue // (Q4_0 and IQ4_NL cannot quantize ffn_down with 500 or 520 rows)
			}
			path := fixturePathCfg(t, sh.name, sh.cfg, ty.name, ty.ftype)
			for _, fa := range []bool{true, false} {
				for _, n := range []int{1, 3, 6, 8, 21} {
					name := fmt.Sprintf("%s/%s/fa=%v/T=%d", sh.name, ty.name, fa, n)
					t.Run(name, func(t *testing.T) {
						opts := llamaOptions(t)
						opts.FlashAttn = fa
						opts.Threads = 2
						r := compareRun(t, path, toks[:n], opts)
						if r.same != r.nodes {
							t.Errorf("%d of %d tensors bit-identical under %s; first: %s", r.same, r.nodes, prof, r.diffs[0])
						}
						total += r.nodes
						same += r.same
						opts.Kernels = base
						rb := compareRunQuiet(t, path, toks[:n], opts)
						wantDiff := ty.repacked
						switch {
						case wantDiff && rb.same == rb.nodes:
							t.Errorf("%s weights: every tensor bit-identical under %s too: were they repacked?", ty.name, base)
						case !ty.repacked && rb.same != rb.nodes:
							t.Errorf("%s weights are not repacked, yet %d of %d tensors differ under %s", ty.name, rb.nodes-rb.same, rb.nodes, base)
						}
						report = append(report, fmt.Sprintf("%-36s %s %3d/%3d bit-identical, %s %3d/%3d", name, prof, r.same, r.nodes, base, rb.same, rb.nodes))
					})
				}
			}
		}
	}
	for _, l := range report {
		t.Log(l)
	}
	t.Logf("total under %s: %d of %d tensors bit-identical", prof, same, total)
}

// compareRunQuiet counts the bit-identical tensors of a run expected to
// differ from llama.cpp's (compareRun's checks are not applied).
func compareRunQuiet(t *testing.T, path string, toks []int32, opts Options) cmpResult {
	t.Helper()
	ref := llamaNodes(t, refConfig{Path: path, Tokens: toks, FA: opts.FlashAttn, KVType: opts.KVType})
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	var c collect
	if _, err := m.Run(toks, opts, &c); err != nil {
		t.Fatal(err)
	}
	res := cmpResult{nodes: len(ref)}
	for i := 0; i < min(len(ref), len(c.nodes)); i++ {
		d, rd := c.ts[i].Data, ref[i].Data
		if len(d) != len(rd) {
			continue
		}
		k := 0
		for ; k < len(d); k++ {
			if math.Float32bits(d[k]) != math.Float32bits(rd[k]) && !(d[k] == 0 && rd[k] == 0) {
				break
			}
		}
		if k == len(d) {
			res.same++
		}
	}
	return res
}
