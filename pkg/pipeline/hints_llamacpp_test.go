//go:build llamacpp

package pipeline

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/diagnose"
	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

const hintPrompt = "hello world this is a test"

// hintFixture writes the F32 fixture cfg to dir/name, with its metadata
// and tensors passed through edit when edit is not nil.
func hintFixture(t *testing.T, dir, name string, cfg fixture.Config, edit func([]gguf.KV, []gguf.WriteTensor) []gguf.KV) string {
	t.Helper()
	kvs, ts, err := fixture.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		kvs = edit(kvs, ts)
	}
	path := filepath.Join(dir, name)
	if err := gguf.WriteFile(path, kvs, ts, 32); err != nil {
		t.Fatal(err)
	}
	return path
}

// hintDump dumps llama.cpp's activations of modelPath on hintPrompt.
func hintDump(t *testing.T, modelPath, out string) string {
	t.Helper()
	if _, err := reference.DumpLlamaCpp(reference.DumpOptions{Model: modelPath, Prompt: hintPrompt, Out: out, Threads: 2}); err != nil {
		t.Fatalf("dump %s: %v", modelPath, err)
	}
	return out
}

// hintRun runs layerdiff's forward pass of modelPath against the reference
// at ref and returns the report's blame.
func hintRun(t *testing.T, ref, modelPath string, o RunOptions) *compare.Blame {
	t.Helper()
	src, err := reference.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	o.Threads = 2
	rep, err := Run(src, modelPath, o)
	if err != nil {
		t.Fatalf("run %s against %s: %v", modelPath, ref, err)
	}
	if rep.Blame == nil {
		t.Fatalf("no blame: verdict %s", rep.Verdict)
	}
	t.Logf("blame %s (%s) by %s", rep.Blame.Name, rep.Blame.Op, rep.Blame.By)
	for _, h := range rep.Blame.Hints {
		t.Logf("hint %s: %s", h.Kind, h.Text)
	}
	return rep.Blame
}

func hintInject(t *testing.T, specs ...string) []Injection {
	t.Helper()
	var out []Injection
	for _, s := range specs {
		j, err := ParseInjection(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
	return out
}

// hintWant checks that the blame names node and op and has a hint of kind
// whose value is value within tol (relative; NaN skips the check) and
// whose text contains text.
func hintWant(t *testing.T, b *compare.Blame, node, op, kind string, value, tol float64, text string) *compare.Hint {
	t.Helper()
	if b.Name != node || b.Op != op {
		t.Errorf("blamed %s (%s), want %s (%s)", b.Name, b.Op, node, op)
	}
	var h *compare.Hint
	if i := slices.IndexFunc(b.Hints, func(h compare.Hint) bool { return h.Kind == kind }); i >= 0 {
		h = &b.Hints[i]
	}
	if h == nil {
		t.Fatalf("hints %q, want %s", kindsOf(b.Hints), kind)
	}
	if !math.IsNaN(value) && math.Abs(float64(h.Value)-value) > tol*math.Abs(value) {
		t.Errorf("%s: value %v, want %v", kind, h.Value, value)
	}
	if !strings.Contains(h.Text, text) {
		t.Errorf("%s: text %q does not say %q", kind, h.Text, text)
	}
	return h
}

// TestHintEndToEnd provokes each diagnosis with real llama.cpp dumps: user
// injections into layerdiff's forward pass, and models whose metadata
// differs from the one the reference was dumped from.
func TestHintEndToEnd(t *testing.T) {
	dir := t.TempDir()
	base := fixture.Default("llama")
	mA := hintFixture(t, dir, "llama.gguf", base, nil)
	dA := hintDump(t, mA, filepath.Join(dir, "dump-llama"))

	t.Run("sign", func(t *testing.T) {
		b := hintRun(t, dA, mA, RunOptions{Inject: hintInject(t, "Qcur-0:sign")})
		hintWant(t, b, "Qcur-0", "MUL_MAT", diagnose.HintSignFlip, -1, 1e-6, "a sign flip")
	})
	t.Run("scale", func(t *testing.T) {
		b := hintRun(t, dA, mA, RunOptions{Inject: hintInject(t, "ffn_up-1:scale=2")})
		hintWant(t, b, "ffn_up-1", "MUL_MAT", diagnose.HintScale, 2, 1e-6, "a constant factor 2")
	})
	t.Run("shift", func(t *testing.T) {
		b := hintRun(t, dA, mA, RunOptions{Inject: hintInject(t, "inp_embd:shift")})
		hintWant(t, b, "inp_embd", "GET_ROWS", diagnose.HintPositionShift, -1, 0, "token t holds the reference's token t−1")
	})
	t.Run("swap", func(t *testing.T) {
		b := hintRun(t, dA, mA, RunOptions{Inject: hintInject(t, "Kcur-0#2:swap")})
		hintWant(t, b, "Kcur-0", "ROPE", diagnose.HintSwappedHalves, math.NaN(), 0, "halves swapped")
	})
	t.Run("transpose", func(t *testing.T) {
		b := hintRun(t, dA, mA, RunOptions{Inject: hintInject(t, "ffn_out-0:transpose")})
		hintWant(t, b, "ffn_out-0", "MUL_MAT", diagnose.HintTransposed, math.NaN(), 0, "matrices transposed")
	})
	t.Run("unexplained", func(t *testing.T) {
		// adding a constant is none of the hypotheses: no hint
		b := hintRun(t, dA, mA, RunOptions{Inject: hintInject(t, "Qcur-0:add=0.1")})
		if b.Name != "Qcur-0" || len(b.Hints) != 0 {
			t.Errorf("blamed %s, hints %+v", b.Name, b.Hints)
		}
	})
	t.Run("agreement", func(t *testing.T) {
		src, err := reference.Open(dA)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(src, mA, RunOptions{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Verdict != compare.VerdictPass || rep.Blame != nil {
			t.Errorf("verdict %s, blame %+v", rep.Verdict, rep.Blame)
		}
	})
	t.Run("kv cache f16", func(t *testing.T) {
		b := hintRun(t, dA, mA, RunOptions{KVType: "f32"})
		h := hintWant(t, b, "cache_k_l0 (view)", "SET_ROWS", diagnose.HintF16Rounding, 1, 0, "KV cache")
		if h.NMSE != 0 {
			t.Errorf("rounding layerdiff's cache to f16 leaves nmse %v", h.NMSE)
		}
	})
	// transposedWq writes the fixture with blk.0.attn_q.weight (square,
	// F32) transposed
	transposedWq := func(t *testing.T) string {
		transpose := func(kvs []gguf.KV, ts []gguf.WriteTensor) []gguf.KV {
			for i := range ts {
				if ts[i].Name != "blk.0.attn_q.weight" {
					continue
				}
				n := int(ts[i].Ne[0])
				if int(ts[i].Ne[1]) != n || ts[i].Type != quant.F32 {
					t.Fatalf("%s: shape %v type %s", ts[i].Name, ts[i].Ne, ts[i].Type)
				}
				src, dst := ts[i].Data, make([]byte, len(ts[i].Data))
				for r := 0; r < n; r++ {
					for c := 0; c < n; c++ {
						copy(dst[4*(c*n+r):4*(c*n+r)+4], src[4*(r*n+c):4*(r*n+c)+4])
					}
				}
				ts[i].Data = dst
			}
			return kvs
		}
		return hintFixture(t, dir, "llama-wq-transposed.gguf", base, transpose)
	}
	t.Run("weight transposed", func(t *testing.T) {
		mT := transposedWq(t)
		b := hintRun(t, dA, mT, RunOptions{})
		hintWant(t, b, "Qcur-0", "MUL_MAT", diagnose.HintWeightTransposed, math.NaN(), 0, "the reference's output matches the transposed weight")
	})
	t.Run("q8_0", func(t *testing.T) {
		// quantized weights: layerdiff's MUL_MAT quantizes activations to
		// q8_0 as ggml does, so recomputations are not exact
		q8 := func(f32 string) string {
			out := strings.TrimSuffix(f32, ".gguf") + "-q8_0.gguf"
			if err := llamacpp.QuantizeModel(f32, out, 7, 2); err != nil { // LLAMA_FTYPE_MOSTLY_Q8_0
				t.Fatal(err)
			}
			return out
		}
		m8 := q8(mA)
		d8 := hintDump(t, m8, filepath.Join(dir, "dump-q8_0"))
		b := hintRun(t, d8, m8, RunOptions{Inject: hintInject(t, "Vcur-1:scale=-0.5")})
		hintWant(t, b, "Vcur-1", "MUL_MAT", diagnose.HintScale, -0.5, 1e-6, "a constant factor -0.5")
		b = hintRun(t, d8, q8(transposedWq(t)), RunOptions{})
		hintWant(t, b, "Qcur-0", "MUL_MAT", diagnose.HintWeightTransposed, math.NaN(), 0, "the reference's output matches the transposed weight")
	})
	t.Run("rope base", func(t *testing.T) {
		cfg := base
		cfg.RopeBase = 20000
		mB := hintFixture(t, dir, "llama-base20000.gguf", cfg, nil)
		dB := hintDump(t, mB, filepath.Join(dir, "dump-base20000"))
		b := hintRun(t, dB, mA, RunOptions{})
		h := hintWant(t, b, "Qcur-0", "ROPE", diagnose.HintRopeBase, 20000, 1e-3, "fit base 20000 and layerdiff's fit 10000")
		if h.Ours == nil || math.Abs(float64(*h.Ours)-10000) > 10 || h.Model == nil || *h.Model != 10000 {
			t.Errorf("ours %v, model %v", h.Ours, h.Model)
		}
	})
	t.Run("rms eps", func(t *testing.T) {
		cfg := base
		cfg.RMSEps = 1e-3
		mC := hintFixture(t, dir, "llama-eps1e-3.gguf", cfg, nil)
		dC := hintDump(t, mC, filepath.Join(dir, "dump-eps1e-3"))
		b := hintRun(t, dC, mA, RunOptions{})
		h := hintWant(t, b, "norm-0", "RMS_NORM", diagnose.HintRMSEps, 1e-3, 1e-2, "the reference's output fits eps 0.001")
		if h.Ours == nil || math.Abs(float64(*h.Ours)-1e-5) > 1e-6 || h.Model == nil || math.Abs(float64(*h.Model)-1e-5) > 1e-12 {
			t.Errorf("ours %v, model %v", h.Ours, h.Model)
		}
	})
	t.Run("rope mode", func(t *testing.T) {
		// a qwen2 model (NEOX) dumped by llama.cpp, run by layerdiff as
		// the same weights under general.architecture = llama (NORM)
		q := fixture.Default("qwen2")
		mQ := hintFixture(t, dir, "qwen2.gguf", q, nil)
		dQ := hintDump(t, mQ, filepath.Join(dir, "dump-qwen2"))
		asLlama := func(kvs []gguf.KV, _ []gguf.WriteTensor) []gguf.KV {
			out := make([]gguf.KV, 0, len(kvs))
			for _, kv := range kvs {
				switch {
				case kv.Key == "general.architecture":
					kv = gguf.NewKV("general.architecture", "llama")
				case strings.HasPrefix(kv.Key, "qwen2."):
					kv.Key = "llama." + strings.TrimPrefix(kv.Key, "qwen2.")
				}
				out = append(out, kv)
			}
			return out
		}
		mL := hintFixture(t, dir, "qwen2-as-llama.gguf", q, asLlama)
		b := hintRun(t, dQ, mL, RunOptions{})
		h := hintWant(t, b, "Qcur-0", "ROPE", diagnose.HintRopeMode, forward.RopeNeox, 0, "the reference's output matches NEOX rotation (pairs i, i+n/2) and layerdiff's matches NORM rotation")
		if h.Ours == nil || *h.Ours != 0 {
			t.Errorf("ours %v", h.Ours)
		}
	})
	t.Run("bos", func(t *testing.T) {
		// a directory of .npy files records no token ids: layerdiff
		// tokenizes the prompt itself, here without the BOS llama.cpp added
		npy := filepath.Join(dir, "npy")
		if err := os.Mkdir(npy, 0o755); err != nil {
			t.Fatal(err)
		}
		files, err := filepath.Glob(filepath.Join(dA, "*.npy"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no .npy files in %s: %v", dA, err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// "0000-inp_embd.npy" -> "inp_embd.npy"
			name := filepath.Base(f)
			if i := strings.IndexByte(name, '-'); i >= 0 {
				name = name[i+1:]
			}
			if err := os.WriteFile(filepath.Join(npy, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b := hintRun(t, npy, mA, RunOptions{Prompt: hintPrompt, NoBOS: true})
		hintWant(t, b, "inp_embd", b.Op, diagnose.HintBOS, 1, 0, "the reference starts with BOS (id 1)")
		// and a prompt that tokenizes differently at the end
		b = hintRun(t, npy, mA, RunOptions{Prompt: strings.TrimSuffix(hintPrompt, "test") + "tesx"})
		hintWant(t, b, "inp_embd", b.Op, diagnose.HintTokenMismatch, math.NaN(), 0, "token-id mismatch at positions")
	})
}

// kindsOf lists the hints' kinds.
func kindsOf(hs []compare.Hint) []string {
	var k []string
	for _, h := range hs {
		k = append(k, h.Kind)
	}
	return k
}
