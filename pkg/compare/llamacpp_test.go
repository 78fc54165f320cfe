//go:build llamacpp

package compare_test

import (
	"encoding/binary"
	"github.com/layerdiff/layerdiff/internal/testshared"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// findShared walks up from the test directory to a sibling "shared".
func findShared(t *testing.T) string {
	t.Helper()
	testshared.File(t, "llamacpp/S-Q8_0.gguf")
	return testshared.Dir(t)
}

var promptTokens = []int32{1, 15043, 3186, 29892, 445, 338, 263, 1243}

// dump runs llama.cpp in-process and keeps every node; contiguous F32
// nodes carry their data, the rest (f16 cache views, permuted views) only
// their description.
func dump(t *testing.T, m *llamacpp.Model, flashAttn string) []*tensor.Tensor {
	t.Helper()
	ctx, err := llamacpp.NewContext(m, llamacpp.ContextOptions{NCtx: 64, FlashAttn: flashAttn, TypeK: 1, TypeV: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	var out []*tensor.Tensor
	err = ctx.Eval(promptTokens, nil, func(n *llamacpp.Node) error {
		ne := tensor.Trim(n.Ne[:])
		tt := &tensor.Tensor{Name: n.Name, Op: n.Op, Ne: ne}
		contiguous := n.Nb[0] == 4
		for i := 1; i < 4; i++ {
			contiguous = contiguous && n.Nb[i] == n.Nb[i-1]*uint64(n.Ne[i-1])
		}
		if n.Type == 0 && contiguous && int64(len(n.Data)) == 4*tensor.Numel(ne) {
			tt.Data = make([]float32, tensor.Numel(ne))
			for i := range tt.Data {
				tt.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(n.Data[4*i:]))
			}
		}
		out = append(out, tt)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLlamaCppDumps compares real llama.cpp graphs: a run with itself
// (bit-exact), and flash attention on against off, whose graphs differ in
// names, ops and numerics (f16 V accumulation with FA on).
func TestLlamaCppDumps(t *testing.T) {
	sd := findShared(t)
	m, err := llamacpp.LoadModel(filepath.Join(sd, "llamacpp", "S-Q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fa1, fa2, noFA := dump(t, m, "on"), dump(t, m, "on"), dump(t, m, "off")
	meta := compare.Meta{Tokens: promptTokens}

	rep, err := compare.Compare(compare.NewTensorList(fa1), compare.NewTensorList(fa2), compare.Options{Policy: compare.MustPolicy(compare.ModeBitExact), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != compare.VerdictPass || rep.Summary.Fail != 0 || rep.Summary.UnmatchedOther != 0 {
		t.Errorf("llama.cpp run against itself: %s %+v %q", rep.Verdict, rep.Summary, rep.Warnings)
	}
	t.Logf("self: %+v", rep.Summary)

	rep, err = compare.Compare(compare.NewTensorList(fa1), compare.NewTensorList(noFA), compare.Options{Policy: compare.MustPolicy(compare.ModeF64), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	worst, worstName := 0.0, ""
	for _, r := range rep.Tensors {
		switch {
		case r.Metrics != nil:
			if v := float64(r.Metrics.NMSE); v > worst {
				worst, worstName = v, r.Name
			}
			t.Logf("%-24s %-15s %-10s %-14s nmse %-9s maxabs %-9s ulp p99 %d", r.Name, r.Op, r.Status, r.Transform,
				compare.FormatFloat(float64(r.Metrics.NMSE), 3), compare.FormatFloat(float64(r.Metrics.MaxAbs), 3), ulpP99(r.Metrics))
		case r.Status == compare.Unmeasured:
			t.Logf("%-24s %-15s %s: %s", r.Name, r.Op, r.Status, strings.Join(r.Reasons, "; "))
		}
		// Every compute node on the FA side except the FA node itself has a
		// counterpart in the FA-off graph.
		if r.Other == nil && !strings.Contains(r.Name, "(") && r.Op != "FLASH_ATTN_EXT" && r.Op != "VIEW" && r.Op != "PERMUTE" {
			t.Errorf("%s (%s) unmatched", r.Name, r.Op)
		}
	}
	t.Logf("FA on vs off: %s %+v; worst nmse %g at %s; unmatched %d", rep.Verdict, rep.Summary, worst, worstName, len(rep.Unmatched))
	if rep.Verdict != compare.VerdictPass {
		t.Errorf("flash attention on vs off fails the f64 policy: %+v", rep.FirstDivergence)
	}
	ro := rep.Tensors[len(rep.Tensors)-1]
	if ro.Name != "result_output" || ro.Metrics == nil || ro.Metrics.Logits == nil || ro.Metrics.Logits.ArgmaxAgree != len(promptTokens) {
		t.Errorf("result_output: %+v", ro)
	}
}

func ulpP99(m *compare.Metrics) uint32 {
	if m.ULP == nil {
		return 0
	}
	return m.ULP.P99
}

// TestLlamaCppLogitsAcrossBuilds compares the last-token logits that a 2026
// llama.cpp (another CPU, AVX-512) saved with llama-debug against the
// in-process llama.cpp of the ollama copy.
func TestLlamaCppLogitsAcrossBuilds(t *testing.T) {
	sd := findShared(t)
	raw, err := os.ReadFile(filepath.Join(sd, "llamacpp", "llama-debug-S-Q8_0", "llamacpp-S-Q8_0.bin"))
	if err != nil {
		t.Skip(err)
	}
	m, err := llamacpp.LoadModel(filepath.Join(sd, "llamacpp", "S-Q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nv := m.NVocab()
	if len(raw) != 4*nv {
		t.Fatalf("logits file has %d bytes, want %d", len(raw), 4*nv)
	}
	ref := make([]float32, nv)
	for i := range ref {
		ref[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	var ours []float32
	for _, tt := range dump(t, m, "auto") {
		if tt.Name == "result_output" {
			ours = tt.Data[len(tt.Data)-nv:]
		}
	}
	mt := compare.Measure(ref, ours, []int64{int64(nv)}, compare.Tolerance{RTol: 1e-3, ATolRMS: 1e-3})
	lg := compare.MeasureLogits(ref, ours, nv, len(promptTokens)-1, compare.TieRule{Gap: 1e-3})
	t.Logf("2026 AVX-512 build vs in-process ollama copy: nmse %g max|Δ| %g ulp p50/p99/max %d/%d/%d bit-identical %d/%d mismatches(1e-3) %d; argmax %d vs %d, top-5 %d, KL %g",
		mt.NMSE, mt.MaxAbs, mt.ULP.P50, mt.ULP.P99, mt.ULP.Max, mt.BitIdentical, mt.N, mt.Mismatches,
		lg.Tokens[0].RefArgmax, lg.Tokens[0].OtherArgmax, lg.Tokens[0].Top5, lg.Tokens[0].KL)
	if lg.ArgmaxAgree != 1 || float64(mt.NMSE) > 1e-3 {
		t.Errorf("logits disagree across builds: nmse %g, argmax %d vs %d", mt.NMSE, lg.Tokens[0].RefArgmax, lg.Tokens[0].OtherArgmax)
	}
}
