//go:build llamacpp

package reference_test

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// dumpTypes are the llama_ftype values of every fixture type.
var dumpTypes = []struct {
	name  string
	ftype int
}{
	{"f32", 0}, {"f16", 1}, {"bf16", 32}, {"q8_0", 7}, {"q4_0", 2},
	{"q4_1", 3}, {"q5_0", 8}, {"q5_1", 9}, {"q2_k", 10}, {"q3_k", 11},
	{"q4_k_m", 15}, {"q5_k_m", 17}, {"q6_k", 18}, {"iq4_nl", 25}, {"iq4_xs", 30},
}

// TestDumpRoundTrip dumps fixtures of every architecture and type with flash
// attention on and off, for 1 and 9 tokens, reads each dump back and checks
// that every stored tensor's statistics are those the manifest records, that
// every result_output row equals llama_get_logits_ith of an independent
// llama.cpp run, and that the graph has what llama.cpp computes.
func TestDumpRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, arch := range fixture.Archs {
		f32 := filepath.Join(dir, arch+"-f32.gguf")
		if err := fixture.Generate(fixture.Default(arch), f32); err != nil {
			t.Fatal(err)
		}
		for _, ty := range dumpTypes {
			path := f32
			if ty.ftype != 0 {
				path = filepath.Join(dir, arch+"-"+ty.name+".gguf")
				if err := llamacpp.QuantizeModel(f32, path, ty.ftype, 2); err != nil {
					t.Fatal(err)
				}
			}
			for _, fa := range []string{"on", "off"} {
				for _, toks := range [][]int32{{1}, {1, 300, 301, 302, 303, 304, 305, 306, 307}} {
					name := fmt.Sprintf("%s/%s/fa-%s/%d", arch, ty.name, fa, len(toks))
					t.Run(name, func(t *testing.T) {
						out := filepath.Join(t.TempDir(), "dump")
						man, err := reference.DumpLlamaCpp(reference.DumpOptions{Model: path, Tokens: toks, Out: out, FlashAttn: fa, Threads: 2, Version: "test"})
						if err != nil {
							t.Fatal(err)
						}
						if want := map[string]string{"on": "on", "off": "off"}[fa]; man.FlashAttn != want {
							t.Errorf("flash attention resolved %q, want %q", man.FlashAttn, want)
						}
						checkDump(t, arch, out, path, toks, fa)
					})
				}
			}
		}
	}
}

func checkDump(t *testing.T, arch, out, model string, toks []int32, fa string) {
	t.Helper()
	d, err := reference.OpenDump(out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	stored := 0
	for _, mn := range d.Manifest.Nodes {
		seen[mn.Name] = true
		if mn.Stats == nil {
			continue
		}
		tt, err := d.Load(mn.Key)
		if err != nil {
			t.Fatalf("%s: %v", mn.Key, err)
		}
		st := reference.ComputeStats(tt.Data)
		if !sameFloat(float64(st.Sum), float64(mn.Stats.Sum)) || st.NaN != mn.Stats.NaN || st.Inf != mn.Stats.Inf ||
			!sameFloat(float64(st.Min), float64(mn.Stats.Min)) || !sameFloat(float64(st.Max), float64(mn.Stats.Max)) {
			t.Errorf("%s: stored data has stats %+v, manifest %+v", mn.Key, st, *mn.Stats)
		}
		if mn.File != "" {
			stored++
		}
	}
	if stored == 0 {
		t.Fatal("nothing stored")
	}
	names := []string{"inp_embd", "norm-0", "attn_norm-0", "Qcur-0", "Kcur-0", "Vcur-0", "kqv_out-0", "ffn_norm-0", "ffn_gate-0", "ffn_up-0", "ffn_out-0", "l_out-0", "l_out-1", "result_norm", "result_output"}
	switch {
	case d.Manifest.Model.Architecture == "gpt-oss": // attn_post_norm before the experts; softmax-weight gating, expert biases
		names = slices.DeleteFunc(names, func(n string) bool {
			return n == "ffn_norm-0" || n == "ffn_gate-0" || n == "ffn_up-0" || n == "ffn_out-0"
		})
		names = append(names, "attn_out-0", "ffn_inp-0", "attn_post_norm-0", "ffn_moe_logits-0", "ffn_moe_probs-0", "ffn_moe_argsort-0",
			"ffn_moe_topk-0", "ffn_moe_weights_softmax-0", "ffn_moe_gate_biased-0", "ffn_moe_up_biased-0", "ffn_moe_weighted-0",
			"ffn_moe_down_biased-0", "ffn_moe_out-0")
	case seen["ffn_moe_logits-0"]: // a mixture of experts
		names = slices.DeleteFunc(names, func(n string) bool { return n == "ffn_gate-0" || n == "ffn_up-0" || n == "ffn_out-0" })
		names = append(names, "ffn_inp-0", "ffn_moe_logits-0", "ffn_moe_probs-0", "ffn_moe_argsort-0", "ffn_moe_topk-0", "ffn_moe_weights_norm-0",
			"ffn_moe_gate-0", "ffn_moe_up-0", "ffn_moe_weighted-0", "ffn_moe_down-0", "ffn_moe_out-0")
	case d.Manifest.Model.Architecture == "gemma2", d.Manifest.Model.Architecture == "gemma3": // the residual is sa_out, the FFN GELU-gated
		names = append(names, "inp_scaled", "attn_post_norm-0", "sa_out-0", "ffn_geglu-0")
	case d.Manifest.Model.Architecture == "phi3": // the fused QKV and gate-up: no ffn_gate, and no ffn_inp name
		names = slices.DeleteFunc(names, func(n string) bool { return n == "ffn_gate-0" })
		names = append(names, "wqkv-0", "ffn_swiglu-0")
	default:
		names = append(names, "ffn_inp-0", "ffn_swiglu-0")
	}
	for _, name := range names {
		if !seen[name] {
			t.Errorf("no node %q in the dump", name)
		}
	}
	if fa == "off" && (!seen["kq-0"] || !seen["kq_soft_max-0"]) {
		t.Error("flash attention off but no kq-0 / kq_soft_max-0")
	}
	if fa == "on" && !seen["__fattn__-0"] {
		t.Error("flash attention on but no __fattn__-0")
	}
	// result_output against an independent llama.cpp run.
	tt, err := d.Load("result_output")
	if err != nil {
		t.Fatal(err)
	}
	m, err := llamacpp.LoadModel(model)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, err := llamacpp.NewContext(m, llamacpp.ContextOptions{NCtx: 256, Threads: 2, FlashAttn: fa, TypeK: 1, TypeV: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	if err := ctx.Eval(toks, func(string) bool { return false }, func(*llamacpp.Node) error { return nil }); err != nil {
		t.Fatal(err)
	}
	nv := m.NVocab()
	if len(tt.Data) != nv*len(toks) {
		t.Fatalf("result_output has %d values, want %d x %d", len(tt.Data), nv, len(toks))
	}
	for i := range toks {
		for j, v := range ctx.Logits(i) {
			if math.Float32bits(v) != math.Float32bits(tt.Data[i*nv+j]) {
				t.Fatalf("token %d logit %d: dump %v, llama_get_logits_ith %v", i, j, tt.Data[i*nv+j], v)
			}
		}
	}
}

func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

// TestDumpMicroBatches dumps a prompt split into llama_decode calls of 4
// tokens (--batch 4): every call's graph is recorded with its micro-batch
// index, and the last call's result_output rows are llama.cpp's logits
// (DumpLlamaCpp checks them against llama_get_logits_ith).
func TestDumpMicroBatches(t *testing.T) {
	dir := t.TempDir()
	f32 := filepath.Join(dir, "f32.gguf")
	if err := fixture.Generate(fixture.Default("llama"), f32); err != nil {
		t.Fatal(err)
	}
	q8 := filepath.Join(dir, "q8.gguf")
	if err := llamacpp.QuantizeModel(f32, q8, 7, 2); err != nil {
		t.Fatal(err)
	}
	toks := []int32{1, 300, 301, 302, 303, 304, 305, 306, 307, 308}
	out := filepath.Join(dir, "dump")
	man, err := reference.DumpLlamaCpp(reference.DumpOptions{Model: q8, Tokens: toks, Out: out, Batch: 4, Threads: 2, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if man.NBatch != 4 || man.NUBatch != 4 {
		t.Errorf("n_batch %d, n_ubatch %d, want 4", man.NBatch, man.NUBatch)
	}
	var rows []int64
	var ubatches []int
	for _, n := range man.Nodes {
		if n.Name == "result_output" {
			rows = append(rows, n.Ne[1])
			ubatches = append(ubatches, n.UBatch)
		}
	}
	if fmt.Sprint(rows) != "[4 4 2]" || fmt.Sprint(ubatches) != "[0 1 2]" {
		t.Errorf("result_output rows %v in micro-batches %v, want [4 4 2] in [0 1 2]", rows, ubatches)
	}
	d, err := reference.OpenDump(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load("result_output#3"); err != nil {
		t.Errorf("the last micro-batch's logits: %v", err)
	}
}
