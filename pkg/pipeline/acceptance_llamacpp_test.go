//go:build llamacpp

package pipeline

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// The acceptance tests of "compare, decide, blame, report": fixtures
// perturbed in one place are caught, and blamed, exactly where the change
// enters the computation — through `run` against a dump, `compare` of two
// dumps and `run` against eval-callback logs of both formats; clean
// fixtures of every architecture and type pass in both numerics modes; and
// `--inject` on every op kind is caught and blamed at that op.
//
// Run: cd /work/main && . scripts/env.sh && go test -tags llamacpp -run Acceptance ./pkg/pipeline
// LAYERDIFF_ACCEPT_ALL_TYPES=1 extends the no-false-alarm matrix from the six
// main weight types to every type `layerdiff fixture` makes.

// acceptPrompt tokenizes to 11 tokens (BOS and 10) with the fixtures' vocabulary.
const acceptPrompt = "Hello world, this is"

// perturbCase is a fixture changed in one place, and the node where the
// change must be caught: its key (name plus "#N" for the N-th node of that
// name), name and op.
type perturbCase struct {
	name      string
	arch, typ string
	fa        string // flash attention of the dumps
	// perturb returns the change; tokens are the clean dump's.
	perturb       func(tokens []int32) fixture.Perturbation
	key, node, op string
}

func scaleTensor(name string, f float64) func([]int32) fixture.Perturbation {
	return func([]int32) fixture.Perturbation {
		return fixture.Perturbation{Kind: fixture.ScaleTensor, Name: name, Value: f}
	}
}

func scaleRow(name string, row int64, f float64) func([]int32) fixture.Perturbation {
	return func([]int32) fixture.Perturbation {
		return fixture.Perturbation{Kind: fixture.ScaleRow, Name: name, Index: row, Value: f}
	}
}

func scaleElement(name string, i int64, f float64) func([]int32) fixture.Perturbation {
	return func([]int32) fixture.Perturbation {
		return fixture.Perturbation{Kind: fixture.ScaleElement, Name: name, Index: i, Value: f}
	}
}

func setMeta(key string, v float64) func([]int32) fixture.Perturbation {
	return func([]int32) fixture.Perturbation {
		return fixture.Perturbation{Kind: fixture.SetMeta, Name: key, Value: v}
	}
}

// perturbCases: one weight matrix, one row of a matrix, one norm weight,
// the RoPE base, the RMS epsilon and one embedding row (of a prompt token),
// on llama, and the architecture-specific weights of qwen2 (biases) and
// qwen3 (Q/K norms), gemma2 (post-norms, sliding window, soft-capping)
// and gemma3 (per-layer RoPE base, Q/K norms). The elements and rows chosen are among those an
// eval-callback log prints (the first and last 3 of each dimension), so the
// log route sees them in printed values — but for one, seen in the sum only.
// (A change that moves no printed element and stays within the sum's
// tolerance is first seen in a log downstream, where it reaches printed
// elements: e.g. attn_norm weight 100 ×1.01 or rms eps 1e-4, first seen at
// Qcur-0. Against a dump both are caught and blamed at their op.)
var perturbCases = []perturbCase{
	{"ffn_up weight", "llama", "q8_0", "auto", scaleTensor("blk.1.ffn_up.weight", 1.01), "ffn_up-1", "ffn_up-1", "MUL_MAT"},
	{"attn_output row", "llama", "q8_0", "auto", scaleRow("blk.0.attn_output.weight", 2, 1.2), "attn_out-0", "attn_out-0", "MUL_MAT"},
	{"attn_norm element", "llama", "q8_0", "auto", scaleElement("blk.0.attn_norm.weight", 1, 1.5), "attn_norm-0", "attn_norm-0", "MUL"},
	// element 100 is not printed: a log shows the change in the sum only
	{"attn_norm element in the sum", "llama", "q8_0", "auto", scaleElement("blk.0.attn_norm.weight", 100, 1.5), "attn_norm-0", "attn_norm-0", "MUL"},
	{"rope base", "llama", "q8_0", "auto", setMeta("rope.freq_base", 10500), "Qcur-0#2", "Qcur-0", "ROPE"},
	{"rope base fa off", "llama", "q8_0", "off", setMeta("rope.freq_base", 10500), "Qcur-0#2", "Qcur-0", "ROPE"},
	{"rms eps", "llama", "q8_0", "auto", setMeta("attention.layer_norm_rms_epsilon", 1e-3), "norm-0", "norm-0", "RMS_NORM"},
	{"embedding row", "llama", "q8_0", "auto", func(toks []int32) fixture.Perturbation {
		return fixture.Perturbation{Kind: fixture.ScaleRow, Name: "token_embd.weight", Index: int64(toks[1]), Value: 1.5}
	}, "inp_embd", "inp_embd", "GET_ROWS"},
	{"output_norm element", "llama", "q4_k_m", "auto", scaleElement("output_norm.weight", 254, 1.5), "result_norm", "result_norm", "MUL"},
	{"ffn_down weight q6_k", "llama", "q6_k", "auto", scaleTensor("blk.0.ffn_down.weight", 0.99), "ffn_out-0", "ffn_out-0", "MUL_MAT"},
	{"q bias", "qwen2", "q8_0", "auto", scaleElement("blk.0.attn_q.bias", 2, 1.5), "Qcur-0#2", "Qcur-0", "ADD"},
	{"rope base neox", "qwen2", "f16", "off", setMeta("rope.freq_base", 10500), "Qcur-0#3", "Qcur-0", "ROPE"},
	{"k_norm element", "qwen3", "q8_0", "auto", scaleElement("blk.1.attn_k_norm.weight", 0, 1.5), "Kcur_normed-1", "Kcur_normed-1", "MUL"},
	// gemma2: the post-norms, the sliding window (8 instead of 4: token 8
	// then sees cells 1 and 2, which a log prints), the soft-cappings
	{"post_attention_norm element", "gemma2", "q8_0", "auto", scaleElement("blk.0.post_attention_norm.weight", 1, 1.5), "attn_post_norm-0", "attn_post_norm-0", "MUL"},
	{"post_ffw_norm element", "gemma2", "q8_0", "auto", scaleElement("blk.1.post_ffw_norm.weight", 2, 1.5), "ffn_post_norm#2", "ffn_post_norm", "MUL"},
	{"sliding window", "gemma2", "q8_0", "off", setMeta("attention.sliding_window", 8), "kq_soft_max-0", "kq_soft_max-0", "SOFT_MAX"},
	{"attention softcap", "gemma2", "q8_0", "off", setMeta("attn_logit_softcapping", 40), "kq_scaled_1-0", "kq_scaled_1-0", "SCALE"},
	{"final softcap", "gemma2", "q8_0", "auto", setMeta("final_logit_softcapping", 25), "node_81", "node_81", "SCALE"},
	// gemma3: the RoPE base reaches only the global layer 5 (the SWA
	// layers rotate with llama.cpp's fixed 10000), a Q norm, a post-norm,
	// the sliding window
	{"rope base global layer", "gemma3", "q8_0", "auto", setMeta("rope.freq_base", 10500), "Qcur-5#2", "Qcur-5", "ROPE"},
	{"q_norm element", "gemma3", "q8_0", "auto", scaleElement("blk.5.attn_q_norm.weight", 1, 1.5), "Qcur_normed-5", "Qcur_normed-5", "MUL"},
	{"post_ffw_norm element", "gemma3", "q8_0", "auto", scaleElement("blk.2.post_ffw_norm.weight", 2, 1.5), "ffn_post_norm-2", "ffn_post_norm-2", "MUL"},
	{"sliding window", "gemma3", "q8_0", "off", setMeta("attention.sliding_window", 8), "kq_soft_max-0", "kq_soft_max-0", "SOFT_MAX"},
	// phi3: a row of the fused QKV (Q's third output), an element of the
	// fused gate-up's last row (the up half), an element of the short
	// rope factors (the fixture's n_ctx 256 selects them) and the rope
	// attn_factor
	{"attn_qkv row", "phi3", "q8_0", "auto", scaleRow("blk.0.attn_qkv.weight", 2, 1.2), "wqkv-0", "wqkv-0", "MUL_MAT"},
	{"fused ffn_up element", "phi3", "q8_0", "auto", scaleElement("blk.1.ffn_up.weight", 1023*256+5, 1.5), "ffn_up-1", "ffn_up-1", "MUL_MAT"},
	{"rope_factors_short element", "phi3", "q8_0", "off", scaleElement("rope_factors_short.weight", 1, 1.5), "Qcur-0", "Qcur-0", "ROPE"},
	{"rope attn_factor", "phi3", "f16", "auto", setMeta("rope.scaling.attn_factor", 1.25), "Qcur-0", "Qcur-0", "ROPE"},
	// mixtures of experts: one row (2, a printed element) of one expert
	// that the first token selects (checked in the clean dump: expertUse),
	// and one router row
	{"expert up row", "qwen3moe", "q8_0", "auto", scaleRow("blk.0.ffn_up_exps.weight", 3*256+2, 1.2), "ffn_moe_up-0", "ffn_moe_up-0", "MUL_MAT_ID"},
	{"expert down row", "mixtral", "q8_0", "auto", scaleRow("blk.1.ffn_down_exps.weight", 3*256+2, 1.2), "ffn_moe_down-1", "ffn_moe_down-1", "MUL_MAT_ID"},
	{"router row", "qwen3moe", "q8_0", "auto", scaleRow("blk.1.ffn_gate_inp.weight", 2, 1.05), "ffn_moe_logits-1", "ffn_moe_logits-1", "MUL_MAT"},
	// gpt-oss: an attention sink (the SWA layer with flash attention, the
	// full layer without), the up experts' biases, the router's bias
	{"attn_sinks element", "gpt-oss", "q8_0", "on", scaleElement("blk.0.attn_sinks.weight", 1, 1.5), "__fattn__-0", "__fattn__-0", "FLASH_ATTN_EXT"},
	{"attn_sinks element fa off", "gpt-oss", "q8_0", "off", scaleElement("blk.1.attn_sinks.weight", 2, 1.5), "kq_soft_max-1", "kq_soft_max-1", "SOFT_MAX"},
	{"expert up bias", "gpt-oss", "q8_0", "auto", scaleTensor("blk.0.ffn_up_exps.bias", 1.5), "ffn_moe_up_biased-0", "ffn_moe_up_biased-0", "ADD_ID"},
	{"router bias", "gpt-oss", "q8_0", "auto", scaleTensor("blk.1.ffn_gate_inp.bias", 1.5), "ffn_moe_probs-1", "ffn_moe_probs-1", "ADD"},
}

// expertUse is, for the expert perturbations, the layer and expert the
// first token of the clean dump must select (else the change is never
// read).
var expertUse = map[string][2]int{
	"expert up row":   {0, 3},
	"expert down row": {1, 3},
}

// TestAcceptancePerturbed dumps the clean fixture with llama.cpp and checks
// that the perturbed one is caught at the perturbed op by (a) `run` against
// the clean dump, blamed there by isolation; (b) `compare` of the clean and
// the perturbed dump (blame: first-fail); (c) `run` against the clean dump
// printed as eval-callback logs of both formats (partial data: first-fail),
// where the clean model passes.
func TestAcceptancePerturbed(t *testing.T) {
	for _, c := range perturbCases {
		t.Run(strings.ReplaceAll(c.arch+" "+c.typ+" "+c.name, " ", "_"), func(t *testing.T) {
			clean := fixtureModel(t, c.arch, c.typ)
			cd := dumpOf(t, clean, c.fa)
			toks := cd.Manifest.Tokens
			if u, ok := expertUse[c.name]; ok {
				checkSelects(t, cd, u[0], u[1])
			}
			p := c.perturb(toks)
			perturbed := fixtureModel(t, c.arch, c.typ, p)
			opts := RunOptions{Threads: 2}

			// (a) run against the clean dump
			r, err := Run(cd, perturbed, opts)
			if err != nil {
				t.Fatal(err)
			}
			wantAt(t, "run "+p.String()+" vs dump", r, c.key, c.node, c.op, "isolation")
			if len(r.Warnings) == 0 || !strings.HasPrefix(r.Warnings[0], "MODEL MISMATCH") {
				t.Errorf("run: no model mismatch warning first: %q", r.Warnings)
			}

			// (b) compare the clean and the perturbed dump
			pd := dumpOf(t, perturbed, c.fa)
			r, err = Compare(cd, pd, CompareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wantAt(t, "compare clean vs "+p.String(), r, c.key, c.node, c.op, "first-fail")

			// (c) run against eval-callback logs of the clean dump
			for _, f := range []reference.LogFormat{reference.LogFormatOld, reference.LogFormatNew} {
				l := writeLog(t, cd, clean, f)
				lo := opts
				lo.Tokens = toks
				r, err := Run(l, clean, lo)
				if err != nil {
					t.Fatal(err)
				}
				wantPass(t, "clean model vs "+f.String()+" log", r)
				r, err = Run(l, perturbed, lo)
				if err != nil {
					t.Fatal(err)
				}
				wantAt(t, "run "+p.String()+" vs "+f.String()+" log", r, c.key, c.node, c.op, "first-fail")
			}
		})
	}
}

// mainTypes are the weight types of the no-false-alarm matrix;
// LAYERDIFF_ACCEPT_ALL_TYPES=1 adds allTypes.
var (
	mainTypes = []string{"f32", "f16", "q8_0", "q4_0", "q4_k_m", "q6_k"}
	allTypes  = []string{"bf16", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q5_k_m", "iq4_nl", "iq4_xs",
		"iq3_s", "tq1_0", "tq2_0", "iq3_xxs", "mxfp4",
		"iq2_xxs", "iq2_xs", "iq2_s", "iq1_s", "iq1_m",
		"mxfp4_moe"} // gpt-oss: MXFP4 experts
)

// knownIssue is a combination that fails today for a reason outside the
// comparison pipeline. The test skips it, naming the issue and what it
// measured, only when it fails exactly so; any other failure is an error.
type knownIssue struct {
	arch, typ, fa, numerics string // "" matches any
	// key is the one failing node; "" when layerdiff cannot run the model
	// at all, err then being part of the error.
	key, err string
	why      string
	// cascade: key is the first divergence and the failures after it
	// follow from it (an expert selection flipped at a near tie).
	cascade bool
}

// knownIssues, measured with acceptPrompt.
var knownIssues = []knownIssue{
	{typ: "iq4_xs", err: "unsupported model", why: "layerdiff's forward pass does not load iq4_xs models (pkg/model/forward)"},
	// Mixtures of experts in the f64 numerics: the router's probabilities,
	// computed without ggml's activation quantization, put one token's
	// experts in another order at a near tie (reference gap 0.002 to 0.005
	// between the two: the report says so at the selection, with the
	// probabilities); what follows from the selection differs by whole
	// experts. The ggml numerics route every token as llama.cpp does.
	{arch: "qwen3moe", typ: "q4_k_m", numerics: "f64", key: "ffn_moe_argsort-1", cascade: true,
		why: "f64 routing: token 4 of layer 1 takes experts 1 and 2 in the other order (probabilities 0.287/0.290, a near tie)"},
	{arch: "mixtral", typ: "q4_0", numerics: "f64", key: "ffn_moe_argsort-0", cascade: true,
		why: "f64 routing: token 5 of layer 0 selects expert 2 for expert 1 (probabilities 0.2232/0.2228, a near tie)"},
	{arch: "mixtral", typ: "q4_k_m", numerics: "f64", key: "ffn_moe_argsort-0", cascade: true,
		why: "f64 routing: token 1 of layer 0 takes experts 0 and 1 in the other order (probabilities 0.428/0.431, a near tie)"},
	// gpt-oss in the all-types matrix (LAYERDIFF_ACCEPT_ALL_TYPES=1): the
	// same f64 routing near ties on the biased router logits of layer 1
	// with the lowest-bit types, and one expert view past the f64 bound
	{arch: "gpt-oss", typ: "iq3_s", fa: "off", numerics: "f64", key: "ffn_moe_argsort-1", cascade: true,
		why: "f64 routing: token 2 of layer 1 takes experts 0 and 3 in the other order (reference gap 0.005)"},
	{arch: "gpt-oss", typ: "iq3_xxs", fa: "off", numerics: "f64", key: "ffn_moe_argsort-1", cascade: true,
		why: "f64 routing: token 10 of layer 1 selects expert 2 for expert 3 (reference gap 0.0014)"},
	{arch: "gpt-oss", typ: "iq2_xxs", numerics: "f64", key: "ffn_moe_argsort-1", cascade: true,
		why: "f64 routing: token 8 of layer 1 selects expert 2 for expert 3 (reference gap 0.017 to 0.018: IQ2_XXS's activation rounding)"},
	{arch: "gpt-oss", typ: "iq2_s", fa: "on", numerics: "f64", key: "node_104 (view)",
		why: "f64: one expert slot's view of layer 1's weighted experts (the MUL after ffn_moe_down_biased) at NMSE 1.03e-3, just past the 1e-3 bound (IQ2_S experts; the view inherits no MUL_MAT_ID bound)"},
}

func findKnown(arch, typ, fa, numerics string) *knownIssue {
	for i := range knownIssues {
		k := &knownIssues[i]
		if (k.arch == "" || k.arch == arch) && k.typ == typ && (k.fa == "" || k.fa == fa) && (k.numerics == "" || k.numerics == numerics) {
			return k
		}
	}
	return nil
}

// TestAcceptanceNoFalseAlarm runs layerdiff's forward pass, in both
// numerics modes (judged in the matching tolerance mode), against
// llama.cpp's dumps of clean fixtures of every architecture and weight
// type, with flash attention on and off: every comparison passes.
func TestAcceptanceNoFalseAlarm(t *testing.T) {
	types := mainTypes
	if os.Getenv("LAYERDIFF_ACCEPT_ALL_TYPES") == "1" {
		types = append(append([]string(nil), mainTypes...), allTypes...)
	}
	for _, arch := range fixture.Archs {
		for _, typ := range types {
			for _, fa := range []string{"on", "off"} {
				for _, numerics := range []string{"ggml", "f64"} {
					t.Run(arch+"_"+typ+"_fa_"+fa+"_"+numerics, func(t *testing.T) {
						m := fixtureModel(t, arch, typ)
						d := dumpOf(t, m, fa)
						if d.Manifest.FlashAttn != fa {
							t.Fatalf("llama.cpp ran with flash attention %q, asked %q", d.Manifest.FlashAttn, fa)
						}
						r, err := Run(d, m, RunOptions{Numerics: numerics, Threads: 2})
						k := findKnown(arch, typ, fa, numerics)
						if err != nil {
							if k != nil && k.key == "" && strings.Contains(err.Error(), k.err) {
								t.Skipf("known issue: %s: %v", k.why, err)
							}
							t.Fatal(err)
						}
						if r.Meta.Mode != numerics {
							t.Errorf("judged in mode %q", r.Meta.Mode)
						}
						if k != nil && k.key != "" && r.Verdict == compare.VerdictFail && (r.Summary.Fail == 1 || k.cascade) && r.FirstDivergence.Key == k.key {
							t.Skipf("known issue: %s: %s", k.why, summary(r))
						}
						if k != nil && r.Verdict == compare.VerdictPass {
							t.Logf("the known issue no longer shows: %s", k.why)
						}
						wantPass(t, numerics+" numerics, flash attention "+fa, r)
					})
				}
			}
		}
	}
}

// injectCase is an --inject and the node it must be caught and blamed at.
type injectCase struct {
	arch, fa      string
	inject        string
	key, node, op string
}

// injectCases cover every op kind of the architectures' graphs, with
// flash attention on and off, and every injection kind.
var injectCases = []injectCase{
	{"llama", "on", "inp_embd:shift", "inp_embd", "inp_embd", "GET_ROWS"},
	{"llama", "on", "norm-0:scale=1.001", "norm-0", "norm-0", "RMS_NORM"},
	{"llama", "on", "attn_norm-0:add=0.001", "attn_norm-0", "attn_norm-0", "MUL"},
	{"llama", "on", "Qcur-0:scale=1.01", "Qcur-0", "Qcur-0", "MUL_MAT"},
	{"llama", "on", "Kcur-0#2:swap", "Kcur-0#2", "Kcur-0", "ROPE"},
	{"llama", "on", "__fattn__-0:scale=0.99", "__fattn__-0", "__fattn__-0", "FLASH_ATTN_EXT"},
	{"llama", "on", "attn_out-0:sign", "attn_out-0", "attn_out-0", "MUL_MAT"},
	{"llama", "on", "ffn_inp-0:add=-0.01", "ffn_inp-0", "ffn_inp-0", "ADD"},
	{"llama", "on", "norm-0#2:scale=1.001", "norm-0#2", "norm-0", "RMS_NORM"},
	{"llama", "on", "ffn_swiglu-0:scale=1.001", "ffn_swiglu-0", "ffn_swiglu-0", "SWIGLU"},
	{"llama", "on", "l_out-0:scale=1.001", "l_out-0", "l_out-0", "ADD"},
	{"llama", "on", "norm:scale=1.001", "norm", "norm", "RMS_NORM"},
	{"llama", "on", "result_norm:add=0.0001", "result_norm", "result_norm", "MUL"},
	{"llama", "on", "result_output:scale=1.001", "result_output", "result_output", "MUL_MAT"},
	{"llama", "off", "Qcur-0#2:scale=1.01", "Qcur-0#2", "Qcur-0", "ROPE"},
	{"llama", "off", "kq-0:transpose", "kq-0", "kq-0", "MUL_MAT"},
	{"llama", "off", "kq_soft_max-0:scale=1.001", "kq_soft_max-0", "kq_soft_max-0", "SOFT_MAX"},
	{"llama", "off", "kqv-0:scale=1.001", "kqv-0", "kqv-0", "MUL_MAT"},
	{"llama", "off", "kqv_out-1:scale=1.001", "kqv_out-1", "kqv_out-1", "CONT"},
	{"llama", "off", "ffn_out-1:swap", "ffn_out-1", "ffn_out-1", "MUL_MAT"},
	{"qwen2", "on", "Qcur-0#2:add=0.001", "Qcur-0#2", "Qcur-0", "ADD"},
	{"qwen2", "on", "Vcur-1#2:scale=1.001", "Vcur-1#2", "Vcur-1", "ADD"},
	{"qwen2", "off", "Kcur-0#3:scale=1.001", "Kcur-0#3", "Kcur-0", "ROPE"},
	{"qwen2", "off", "node_31:scale=1.001", "node_31", "node_31", "MUL_MAT"},
	{"qwen3", "on", "norm-0#2:scale=1.001", "norm-0#2", "norm-0", "RMS_NORM"},
	{"qwen3", "on", "Qcur_normed-0:scale=1.001", "Qcur_normed-0", "Qcur_normed-0", "MUL"},
	{"qwen3", "on", "ffn_gate-1:scale=1.001", "ffn_gate-1", "ffn_gate-1", "MUL_MAT"},
	// gemma2: SCALE, TANH, GEGLU, flash attention with soft-capping on an
	// SWA and a global layer, the post-norms and sa_out
	{"gemma2", "on", "inp_scaled:scale=1.001", "inp_scaled", "inp_scaled", "SCALE"},
	{"gemma2", "on", "node_7:scale=1.001", "node_7", "node_7", "SCALE"},
	{"gemma2", "on", "__fattn__-0:scale=0.99", "__fattn__-0", "__fattn__-0", "FLASH_ATTN_EXT"},
	{"gemma2", "on", "__fattn__-1:swap", "__fattn__-1", "__fattn__-1", "FLASH_ATTN_EXT"},
	{"gemma2", "on", "attn_post_norm-0:add=0.001", "attn_post_norm-0", "attn_post_norm-0", "MUL"},
	{"gemma2", "on", "sa_out-1:scale=1.001", "sa_out-1", "sa_out-1", "ADD"},
	{"gemma2", "on", "ffn_geglu-0:scale=1.001", "ffn_geglu-0", "ffn_geglu-0", "GEGLU"},
	{"gemma2", "on", "ffn_post_norm#2:scale=1.001", "ffn_post_norm#2", "ffn_post_norm", "MUL"},
	{"gemma2", "on", "node_82:scale=1.001", "node_82", "node_82", "TANH"},
	{"gemma2", "off", "kq_scaled_1-0:scale=1.001", "kq_scaled_1-0", "kq_scaled_1-0", "SCALE"},
	{"gemma2", "off", "kq_tanh-1:scale=1.001", "kq_tanh-1", "kq_tanh-1", "TANH"},
	{"gemma2", "off", "kq_scaled_2-0:scale=1.001", "kq_scaled_2-0", "kq_scaled_2-0", "SCALE"},
	// gemma3: the global layer 5 (its own mask and RoPE base), the Q/K
	// norms, a post-norm named per layer
	{"gemma3", "on", "Qcur-5#2:scale=1.001", "Qcur-5#2", "Qcur-5", "ROPE"},
	{"gemma3", "on", "Kcur_normed-5:scale=1.001", "Kcur_normed-5", "Kcur_normed-5", "MUL"},
	{"gemma3", "on", "__fattn__-5:scale=0.99", "__fattn__-5", "__fattn__-5", "FLASH_ATTN_EXT"},
	{"gemma3", "off", "kq_soft_max-5:scale=1.001", "kq_soft_max-5", "kq_soft_max-5", "SOFT_MAX"},
	{"gemma3", "on", "ffn_post_norm-3:scale=1.001", "ffn_post_norm-3", "ffn_post_norm-3", "MUL"},
	// phi3: the fused QKV, the factored ROPE, the SCALE of Q, the
	// one-tensor SWIGLU of the fused gate-up, the unnamed residual ADD
	{"phi3", "on", "wqkv-0:scale=1.001", "wqkv-0", "wqkv-0", "MUL_MAT"},
	{"phi3", "on", "Kcur-1:scale=1.001", "Kcur-1", "Kcur-1", "ROPE"},
	{"phi3", "on", "Qcur-0#2:scale=1.001", "Qcur-0#2", "Qcur-0", "SCALE"},
	{"phi3", "off", "Qcur-1#2:add=0.001", "Qcur-1#2", "Qcur-1", "SCALE"},
	{"phi3", "on", "ffn_swiglu-1:scale=1.001", "ffn_swiglu-1", "ffn_swiglu-1", "SWIGLU"},
	{"phi3", "off", "ffn_up-0:swap", "ffn_up-0", "ffn_up-0", "MUL_MAT"},
	{"phi3", "off", "node_28:scale=1.001", "node_28", "node_28", "ADD"},
	// mixtures of experts (build_moe_ffn); CLAMP is in place (a view of
	// its source) and is never offered to an injection
	{"qwen3moe", "on", "ffn_moe_logits-0:scale=1.01", "ffn_moe_logits-0", "ffn_moe_logits-0", "MUL_MAT"},
	{"qwen3moe", "on", "ffn_moe_probs-0:scale=1.001", "ffn_moe_probs-0", "ffn_moe_probs-0", "SOFT_MAX"},
	{"qwen3moe", "on", "ffn_moe_argsort-0:swap", "ffn_moe_argsort-0", "ffn_moe_argsort-0", "ARGSORT"},
	{"qwen3moe", "on", "ffn_moe_weights-0:scale=1.001", "ffn_moe_weights-0", "ffn_moe_weights-0", "GET_ROWS"},
	{"qwen3moe", "on", "ffn_moe_weights_sum-0:scale=1.001", "ffn_moe_weights_sum-0", "ffn_moe_weights_sum-0", "SUM_ROWS"},
	{"qwen3moe", "on", "ffn_moe_weights_norm-1:scale=1.001", "ffn_moe_weights_norm-1", "ffn_moe_weights_norm-1", "DIV"},
	{"qwen3moe", "on", "ffn_moe_up-0:scale=1.001", "ffn_moe_up-0", "ffn_moe_up-0", "MUL_MAT_ID"},
	{"qwen3moe", "off", "ffn_moe_gate-1:scale=1.001", "ffn_moe_gate-1", "ffn_moe_gate-1", "MUL_MAT_ID"},
	{"qwen3moe", "on", "ffn_moe_weighted-0:scale=1.001", "ffn_moe_weighted-0", "ffn_moe_weighted-0", "SWIGLU"},
	{"qwen3moe", "on", "node_48:scale=1.001", "node_48", "node_48", "MUL"},
	{"qwen3moe", "on", "ffn_moe_out-1:add=0.001", "ffn_moe_out-1", "ffn_moe_out-1", "ADD"},
	{"mixtral", "on", "ffn_moe_down-1:scale=1.001", "ffn_moe_down-1", "ffn_moe_down-1", "MUL_MAT_ID"},
	{"mixtral", "off", "ffn_moe_argsort-1:swap", "ffn_moe_argsort-1", "ffn_moe_argsort-1", "ARGSORT"},
	{"mixtral", "on", "node_44:scale=1.001", "node_44", "node_44", "MUL"},
	// gpt-oss: attention with sinks (FLASH_ATTN_EXT on the SWA layer,
	// SOFT_MAX on the full one), SWIGLU_OAI (named ffn_moe_weighted by
	// build_moe_ffn's last callback), ADD_ID (expert biases)
	{"gpt-oss", "on", "__fattn__-0:scale=0.99", "__fattn__-0", "__fattn__-0", "FLASH_ATTN_EXT"},
	{"gpt-oss", "off", "kq_soft_max-1:scale=1.001", "kq_soft_max-1", "kq_soft_max-1", "SOFT_MAX"},
	{"gpt-oss", "on", "ffn_moe_weighted-0:scale=1.001", "ffn_moe_weighted-0", "ffn_moe_weighted-0", "SWIGLU_OAI"},
	{"gpt-oss", "on", "ffn_moe_up_biased-0:scale=1.001", "ffn_moe_up_biased-0", "ffn_moe_up_biased-0", "ADD_ID"},
	{"gpt-oss", "off", "ffn_moe_down_biased-1:add=0.001", "ffn_moe_down_biased-1", "ffn_moe_down_biased-1", "ADD_ID"},
}

// TestAcceptanceInject runs layerdiff with one --inject against llama.cpp's
// dump of the same (q8_0) model: the injected op is the first divergence
// and is blamed by isolation.
func TestAcceptanceInject(t *testing.T) {
	for _, c := range injectCases {
		t.Run(c.arch+"_fa_"+c.fa+"_"+c.inject, func(t *testing.T) {
			r := runInjected(t, c, RunOptions{Threads: 2})
			wantAt(t, "--inject "+c.inject, r, c.key, c.node, c.op, "isolation")
		})
	}
}

// runInjected runs layerdiff with c's --inject against llama.cpp's dump of
// the same (q8_0) fixture, with options o.
func runInjected(t *testing.T, c injectCase, o RunOptions) *compare.Report {
	t.Helper()
	m := fixtureModel(t, c.arch, "q8_0")
	d := dumpOf(t, m, c.fa)
	inj, err := ParseInjection(c.inject)
	if err != nil {
		t.Fatal(err)
	}
	o.Inject = []Injection{inj}
	r, err := Run(d, m, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkSelects fails unless the first token of dump d selects expert x in
// layer il (ffn_moe_argsort-il's first n_expert_used indices).
func checkSelects(t *testing.T, d *reference.Dump, il, x int) {
	t.Helper()
	key := fmt.Sprintf("ffn_moe_argsort-%d", il)
	tt, err := d.Load(key)
	if err != nil {
		t.Fatal(err)
	}
	used := 0
	for _, n := range d.Nodes() {
		if n.Name == fmt.Sprintf("ffn_moe_topk-%d", il) && len(n.Ne) > 0 {
			used = int(n.Ne[0])
		}
	}
	if used == 0 || len(tt.Data) < used {
		t.Fatalf("%s: no top-k view", key)
	}
	for _, v := range tt.Data[:used] {
		if int(v) == x {
			return
		}
	}
	t.Fatalf("the first token selects experts %v in layer %d, not %d: the perturbed expert is never read", tt.Data[:used], il, x)
}
