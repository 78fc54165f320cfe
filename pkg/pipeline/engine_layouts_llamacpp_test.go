//go:build llamacpp

package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/attention"
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// load reads a dump node's tensor by key.
func load(t *testing.T, src reference.Source, key string) *tensor.Tensor {
	t.Helper()
	x, err := src.Load(key)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// engineFile writes an engine's .npy: numpy shape shape, item at C-order
// position p is at(p) (the numpy index as coordinates).
func engineFile(t *testing.T, dir, name string, shape []int64, at func(idx []int64) float32) {
	t.Helper()
	n := tensor.Numel(shape)
	data := make([]float32, n)
	idx := make([]int64, len(shape))
	for p := range n {
		data[p] = at(idx)
		for k := len(shape) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	if err := reference.WriteNPYFloat32(filepath.Join(dir, name+".npy"), shape, data); err != nil {
		t.Fatal(err)
	}
}

// fortranFile writes a Fortran-order float32 .npy of numpy shape (rows,
// cols): item [r, c] at r + rows·c.
func fortranFile(t *testing.T, dir, name string, rows, cols int64, at func(r, c int64) float32) {
	t.Helper()
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': True, 'shape': (%d, %d), }", rows, cols)
	hdr := dict + strings.Repeat(" ", (64-(10+len(dict)+1)%64)%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	for c := range cols {
		for r := range rows {
			binary.Write(&b, binary.LittleEndian, at(r, c))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name+".npy"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// attentionFiles writes layer l's kq (masked with −Inf above the
// diagonal), kq_soft_max and kqv as a numpy engine would: (heads, T, T),
// (heads, T, T), (heads, T, d), taken from a flash-attention-off dump.
func attentionFiles(t *testing.T, dir string, off reference.Source, l int) {
	kq := load(t, off, fmt.Sprintf("kq-%d", l))
	sm := load(t, off, fmt.Sprintf("kq_soft_max-%d", l))
	kqv := load(t, off, fmt.Sprintf("kqv-%d", l))
	nkv, T, H := kq.Ne[0], kq.Ne[1], kq.Ne[2]
	ninf := float32(math.Inf(-1))
	engineFile(t, dir, fmt.Sprintf("kq-%d", l), []int64{H, T, T}, func(i []int64) float32 {
		if i[2] > i[1] {
			return ninf
		}
		return kq.Data[i[2]+nkv*i[1]+nkv*T*i[0]]
	})
	engineFile(t, dir, fmt.Sprintf("kq_soft_max-%d", l), []int64{H, T, T}, func(i []int64) float32 {
		return sm.Data[i[2]+nkv*i[1]+nkv*T*i[0]]
	})
	d := kqv.Ne[0]
	engineFile(t, dir, fmt.Sprintf("kqv-%d", l), []int64{H, T, d}, func(i []int64) float32 {
		return kqv.Data[i[2]+d*i[1]+d*T*i[0]]
	})
}

// TestEngineNumpyLayouts writes an engine-like .npy directory from a real
// flash-attention-off dump in numpy's layouts — (hidden, T), (1, T,
// hidden), per-head (heads, T, d), a Fortran-order (T, hidden), masked
// (heads, T, T) attention scores — and compares the dump with it: every
// engine tensor is matched, compared under the right shape rule with its
// note, and agrees bit for bit.
func TestEngineNumpyLayouts(t *testing.T) {
	m := fixtureModel(t, "llama", "q8_0")
	off := dumpOf(t, m, "off")
	dir := t.TempDir()
	emb := load(t, off, "inp_embd")
	E, T := emb.Ne[0], emb.Ne[1]
	engineFile(t, dir, "inp_embd", []int64{E, T}, func(i []int64) float32 { return emb.Data[i[0]+E*i[1]] })
	an := load(t, off, "attn_norm-0")
	engineFile(t, dir, "attn_norm-0", []int64{1, T, E}, func(i []int64) float32 { return an.Data[i[2]+E*i[1]] })
	q := load(t, off, "Qcur-0") // MUL_MAT {n_head·d, T}
	const d = 64
	H := q.Ne[0] / d
	engineFile(t, dir, "Qcur-0", []int64{H, T, d}, func(i []int64) float32 { return q.Data[i[0]*d+i[2]+q.Ne[0]*i[1]] })
	ffn := load(t, off, "ffn_out-0")
	fortranFile(t, dir, "ffn_out-0", T, ffn.Ne[0], func(r, c int64) float32 { return ffn.Data[c+ffn.Ne[0]*r] })
	lo := load(t, off, "l_out-1")
	engineFile(t, dir, "l_out-1", []int64{T, E}, func(i []int64) float32 { return lo.Data[i[1]+E*i[0]] })
	attentionFiles(t, dir, off, 0)

	eng, err := reference.OpenNPYDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compare(off, eng, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.UnmatchedOther != 0 {
		t.Errorf("unmatched engine tensors: %+v", r.Unmatched)
	}
	want := map[string]struct{ kind, note string }{
		"inp_embd":      {compare.Permute, fmt.Sprintf("numpy shape (%d, %d), against {%d, %d}): compared transposed", E, T, E, T)},
		"attn_norm-0":   {compare.SameShape, ""},
		"Qcur-0":        {compare.Permute, fmt.Sprintf("numpy shape (%d, %d, %d), against {%d, %d}): compared axes permuted", H, T, d, H*d, T)},
		"ffn_out-0":     {compare.SameShape, ""},
		"l_out-1":       {compare.SameShape, ""},
		"kq-0":          {compare.FirstCells, "masks kq above the diagonal"},
		"kq_soft_max-0": {compare.FirstCells, fmt.Sprintf("compared the first %d of each row", T)},
		"kqv-0":         {compare.SameShape, ""},
	}
	seen := 0
	for _, row := range r.Tensors {
		w, ok := want[row.Key]
		if !ok {
			continue
		}
		seen++
		notes := strings.Join(row.Notes, "\n")
		if row.Status != compare.Pass || row.Transform != w.kind || row.Metrics.BitIdentical != row.Metrics.N || !strings.Contains(notes, w.note) {
			t.Errorf("%s: %s %s (%d of %d bit-identical), notes %q, reasons %q; want pass %s with %q", row.Key, row.Status, row.Transform, row.Metrics.BitIdentical, row.Metrics.N, notes, row.Reasons, w.kind, w.note)
		}
	}
	if seen != len(want) {
		t.Errorf("%d of %d engine tensors have a row", seen, len(want))
	}
	if r.Verdict != compare.VerdictPass {
		t.Errorf("verdict %s, warnings %q", r.Verdict, r.Warnings)
	}
}

// f16Q is a dump whose Q views are rounded to float16.
type f16Q struct{ reference.Source }

func (s f16Q) Load(key string) (*tensor.Tensor, error) {
	x, err := s.Source.Load(key)
	if err == nil && strings.HasPrefix(key, "Qcur-") {
		for i, v := range x.Data {
			x.Data[i] = quant.F16ToF32(quant.F32ToF16(v))
		}
	}
	return x, err
}

// TestDerivedAttention checks the attention nodes derived from a real
// flash-attention dump's Q and KV cache views against the real ones of a
// flash-attention-off dump of the same model and prompt: layer 0 (the same
// inputs on both) agrees to the f16 rounding of Q in llama.cpp's own kq
// matmul; and an engine's kq, kq_soft_max and kqv (the off dump's, trimmed
// to T×T) are measured against the flash-attention dump, marked derived,
// and pass.
func TestDerivedAttention(t *testing.T) {
	// phi3: Q scaled before an attention of scale 1
	for _, arch := range []string{"llama", "qwen2", "phi3"} {
		m := fixtureModel(t, arch, "q8_0")
		on, off := dumpOf(t, m, "on"), dumpOf(t, m, "off")
		src, warn := attention.Derive(on, nil)
		if len(warn) > 0 {
			t.Fatalf("%s: %q", arch, warn)
		}
		layers := 0
		for _, n := range src.Nodes() {
			base, l := tensor.SplitName(n.Name)
			if base != attention.KQ && base != attention.KQSoftMax && base != attention.KQV {
				continue
			}
			layers++
			got, want := load(t, src, n.Key), load(t, off, n.Name)
			if !tensor.SameShape(got.Ne, want.Ne) {
				t.Errorf("%s %s: derived %v, flash attention off %v", arch, n.Name, got.Ne, want.Ne)
				continue
			}
			met := compare.Measure(want.Data, got.Data, want.Ne, compare.Tolerance{})
			limit := 1e-3 // later layers: the inputs differ already
			if l == 0 {
				limit = 1e-6
			}
			t.Logf("%s %s: nmse %.3g, max |Δ| %.3g", arch, n.Name, float64(met.NMSE), float64(met.MaxAbs))
			if !(float64(met.NMSE) < limit) {
				t.Errorf("%s %s: derived vs flash attention off: nmse %g, want < %g", arch, n.Name, float64(met.NMSE), limit)
			}
		}
		if layers != 3*2 {
			t.Errorf("%s: %d derived nodes, want 6", arch, layers)
		}
		// Layer 0's difference is llama.cpp's f16 rounding of Q (ggml's
		// f16 matmul converts its f32 operand): with Q rounded so, the
		// derived kq-0 is the real one up to the order of additions.
		q16, _ := attention.Derive(f16Q{on}, nil)
		got, want := load(t, q16, "kq-0"), load(t, off, "kq-0")
		if met := compare.Measure(want.Data, got.Data, want.Ne, compare.Tolerance{}); !(float64(met.NMSE) < 1e-12) {
			t.Errorf("%s kq-0 from an f16-rounded Q: nmse %g, want < 1e-12", arch, float64(met.NMSE))
		}

		dir := t.TempDir()
		for l := range 2 {
			attentionFiles(t, dir, off, l)
		}
		eng, err := reference.OpenNPYDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Compare(on, eng, CompareOptions{Policy: compare.MustPolicy(compare.ModeF64)})
		if err != nil {
			t.Fatal(err)
		}
		if r.Summary.UnmatchedOther != 0 || r.Verdict != compare.VerdictPass {
			t.Errorf("%s: verdict %s, unmatched %+v", arch, r.Verdict, r.Unmatched)
		}
		measured := 0
		for _, row := range r.Tensors {
			if row.Other == nil {
				continue
			}
			measured++
			notes := strings.Join(row.Notes, "\n")
			if row.Status != compare.Pass || !row.Derived || !strings.Contains(notes, "derived: recomputed from the reference's Q and KV cache views") {
				t.Errorf("%s %s: %s derived %v, notes %q, reasons %q", arch, row.Key, row.Status, row.Derived, notes, row.Reasons)
			}
		}
		if measured != 6 {
			t.Errorf("%s: %d engine tensors measured, want 6", arch, measured)
		}
	}
}

// TestDerivedAttentionGemma checks the derivation on the gemma fixtures:
// gemma3's kq_soft_max and kqv use the attention's own scale 1 (Q is
// scaled before) and the op's mask, which hides the positions outside the
// sliding window in the SWA layers (0–4) and not in layer 5; gemma2
// soft-caps its logits, so only kq is derived, with a warning.
func TestDerivedAttentionGemma(t *testing.T) {
	for _, c := range []struct {
		arch   string
		bases  int // derived nodes per layer
		layers int
	}{{"gemma3", 3, 6}, {"gemma2", 1, 2}} {
		m := fixtureModel(t, c.arch, "q8_0")
		on, off := dumpOf(t, m, "on"), dumpOf(t, m, "off")
		src, warn := attention.Derive(on, nil)
		if (len(warn) > 0) != (c.bases == 1) {
			t.Errorf("%s: warnings %q", c.arch, warn)
		}
		derived := 0
		for _, n := range src.Nodes() {
			base, l := tensor.SplitName(n.Name)
			if base != attention.KQ && base != attention.KQSoftMax && base != attention.KQV {
				continue
			}
			derived++
			got, want := load(t, src, n.Key), load(t, off, n.Name)
			met := compare.Measure(want.Data, got.Data, want.Ne, compare.Tolerance{})
			limit := 1e-3
			if l == 0 {
				limit = 1e-6
			}
			if !(float64(met.NMSE) < limit) {
				t.Errorf("%s %s: derived vs flash attention off: nmse %g, want < %g", c.arch, n.Name, float64(met.NMSE), limit)
			}
		}
		if want := c.bases * c.layers; derived != want {
			t.Errorf("%s: %d derived nodes, want %d", c.arch, derived, want)
		}
	}
}
