//go:build llamacpp

package llamacpp

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// f32Fixture writes the default llama fixture in F32 to dir.
func f32Fixture(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "llama-f32.gguf")
	if err := fixture.Generate(fixture.Default("llama"), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// fmaF32 is the float32 fused multiply-add a*b+c, rounded once: GCC
// contracts llama-imatrix's `sums += x*x` (and ours, imatrix.cpp) into a
// vfmadd (-ffp-contract=fast).
func fmaF32(a, b, c float32) float32 {
	z := new(big.Float).SetPrec(1000).SetFloat64(float64(a) * float64(b)) // exact: 48 bits
	z.Add(z, new(big.Float).SetFloat64(float64(c)))
	f, _ := z.Float32()
	return f
}

// evalTensor is a node's F32 data and strides, kept from the eval callback.
type evalTensor struct {
	ne   [4]int64
	nb   [4]uint64
	data []byte
}

// TestImatrixMatchesEval recomputes the importance matrix from the nodes
// llama.cpp's ordinary eval callback hands out (Context.Eval: each
// MUL_MAT's src1 is an earlier node), in the same float32 order, and
// requires the same bits; every blk.* matrix is covered with ne[0]
// positive means.
func TestImatrixMatchesEval(t *testing.T) {
	path := f32Fixture(t, t.TempDir())
	im, err := ComputeImatrixFile(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	toks, err := imatrixTokens(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := NewContext(m, ContextOptions{NCtx: len(toks), Threads: 2, TypeK: 1, TypeV: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	seen := map[string]evalTensor{}
	want := Imatrix{}
	err = ctx.Eval(toks, nil, func(n *Node) error {
		if n.Op == "MUL_MAT" && strings.HasPrefix(n.Src[0], "blk.") {
			s, ok := seen[n.Src[1]]
			if !ok {
				t.Errorf("%s: src1 %q not seen", n.Name, n.Src[1])
				return nil
			}
			sums := make([]float32, s.ne[0])
			rows := s.ne[1] * s.ne[2] * s.ne[3]
			for r := int64(0); r < rows; r++ {
				i1, i2, i3 := r%s.ne[1], (r/s.ne[1])%s.ne[2], r/(s.ne[1]*s.ne[2])
				off := uint64(i1)*s.nb[1] + uint64(i2)*s.nb[2] + uint64(i3)*s.nb[3]
				for j := range sums {
					x := math.Float32frombits(binary.LittleEndian.Uint32(s.data[off+4*uint64(j):]))
					sums[j] = fmaF32(x, x, sums[j])
				}
			}
			for j := range sums {
				sums[j] /= float32(rows)
			}
			want[n.Src[0]] = sums
		}
		if n.Type == 0 && n.Data != nil {
			seen[n.Name] = evalTensor{ne: n.Ne, nb: n.Nb, data: append([]byte(nil), n.Data...)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var matrices int
	for _, ti := range f.Tensors {
		if !strings.HasPrefix(ti.Name, "blk.") || len(ti.Ne) < 2 || ti.Ne[1] == 1 {
			continue
		}
		matrices++
		got, ok := im[ti.Name]
		if !ok || len(got) != int(ti.Ne[0]) {
			t.Errorf("%s: imatrix of %d values, want %d", ti.Name, len(got), ti.Ne[0])
			continue
		}
		w := want[ti.Name]
		for j := range got {
			if len(w) != len(got) {
				t.Fatalf("%s: imatrix of %d values, recomputed %d", ti.Name, len(got), len(w))
			}
			if !(got[j] > 0) || math.Float32bits(got[j]) != math.Float32bits(w[j]) {
				t.Fatalf("%s[%d]: imatrix %g, recomputed from the eval callback %g", ti.Name, j, got[j], w[j])
			}
		}
	}
	if matrices == 0 || len(im) != matrices {
		t.Errorf("imatrix has %d entries for %d blk.* matrices", len(im), matrices)
	}
}

// TestQuantizeImatrix: an ftype that needs an importance matrix gets the
// one ComputeImatrixFile makes (the same bytes as passing it), another
// imatrix changes the result, and an empty, mis-sized or NaN one is a
// clear error. The pure IQ2_S recipe of `layerdiff fixture --type iq2_s`
// puts IQ2_S in every matrix, Q2_K in token_embd and Q5_K in output.
func TestQuantizeImatrix(t *testing.T) {
	dir := t.TempDir()
	src := f32Fixture(t, dir)
	im, err := ComputeImatrixFile(src, 2)
	if err != nil {
		t.Fatal(err)
	}
	auto, given, ones := filepath.Join(dir, "auto.gguf"), filepath.Join(dir, "given.gguf"), filepath.Join(dir, "ones.gguf")
	const iq2xxs = 19
	if err := Quantize(src, auto, QuantizeParams{Ftype: iq2xxs, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	if err := Quantize(src, given, QuantizeParams{Ftype: iq2xxs, Threads: 2, Imatrix: im}); err != nil {
		t.Fatal(err)
	}
	flat := Imatrix{}
	for k, v := range im {
		flat[k] = make([]float32, len(v))
		for j := range v {
			flat[k][j] = 1
		}
	}
	if err := Quantize(src, ones, QuantizeParams{Ftype: iq2xxs, Threads: 2, Imatrix: flat}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(auto)
	g, _ := os.ReadFile(given)
	o, _ := os.ReadFile(ones)
	if len(a) == 0 || !bytes.Equal(a, g) {
		t.Error("quantizing with the computed imatrix differs from quantizing with none given")
	}
	if bytes.Equal(a, o) {
		t.Error("a flat imatrix gives the same file: the imatrix is not used")
	}

	bad := filepath.Join(dir, "bad.gguf")
	short := Imatrix{}
	for k, v := range im {
		short[k] = v
	}
	short["blk.0.ffn_up.weight"] = short["blk.0.ffn_up.weight"][:8]
	nan := Imatrix{"blk.0.ffn_up.weight": {float32(math.NaN())}}
	for _, c := range []struct {
		name string
		im   Imatrix
		want string
	}{
		{"empty", Imatrix{}, "Missing importance matrix"},
		{"short", short, "imatrix size 8 is different from tensor size"},
		{"nan", nan, `imatrix of "blk.0.ffn_up.weight" holds NaN`},
	} {
		err := Quantize(src, bad, QuantizeParams{Ftype: iq2xxs, Threads: 2, Imatrix: c.im})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s imatrix: %v, want an error saying %q", c.name, err, c.want)
		}
	}

	q, ok := fixture.QuantOf("iq2_s")
	if !ok {
		t.Fatal("no iq2_s recipe")
	}
	pure := filepath.Join(dir, "iq2_s.gguf")
	if err := Quantize(src, pure, QuantizeParams{Ftype: q.Ftype, Threads: 2, Pure: q.Pure, TokenEmbdType: q.TokenEmbd, OutputType: q.Output}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(pure)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, ti := range f.Tensors {
		want := quant.IQ2_S
		switch {
		case ti.Name == "token_embd.weight":
			want = quant.Q2_K
		case ti.Name == "output.weight":
			want = quant.Q5_K
		case len(ti.Ne) < 2 || ti.Ne[1] == 1:
			want = quant.F32
		}
		if ti.Type != want {
			t.Errorf("iq2_s recipe: %s is %s, want %s", ti.Name, ti.Type, want)
		}
	}
}
