//go:build llamacpp

package forward

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/tokenizer"
)

// TestPhi3RopeFactorsMatchLlamaCpp runs the phi3 fixture (original context
// 256, long and short RoPE factors) with KV caches of 256 cells (the short
// factors) and 512 (more than the original context: the long ones), as
// llama_model::get_rope_factors chooses, and requires every node
// bit-identical to llama.cpp's.
func TestPhi3RopeFactorsMatchLlamaCpp(t *testing.T) {
	toks := []int32{1, 300, 301, 302, 303, 304, 305, 306}
	for _, typ := range []struct {
		name  string
		ftype int
	}{{"f32", 0}, {"q8_0", 7}} {
		path := fixturePath(t, "phi3", typ.name, typ.ftype)
		for _, nctx := range []int{256, 512} {
			for _, fa := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/nctx=%d/fa=%v", typ.name, nctx, fa), func(t *testing.T) {
					opts := llamaOptions(t)
					opts.FlashAttn = fa
					opts.NCtx = nctx
					opts.Threads = 2
					r := compareRun(t, path, toks, opts)
					if r.same != r.nodes {
						t.Errorf("%d of %d nodes bit-identical; first: %v", r.same, r.nodes, r.diffs[0])
					}
				})
			}
		}
	}
}

// TestPhi3OrigCtxZeroMatchesLlamaCpp: with
// rope.scaling.original_context_length 0 (ollama's converter writes it for
// the 4k models) llama.cpp's get_rope_factors compares the context with 0
// and takes the long factors, though the rope op's n_ctx_orig is then the
// training context.
func TestPhi3OrigCtxZeroMatchesLlamaCpp(t *testing.T) {
	kvs, ts, err := fixture.Build(fixture.Default("phi3"))
	if err != nil {
		t.Fatal(err)
	}
	kvs = setKV(kvs, "phi3.rope.scaling.original_context_length", uint32(0))
	path := filepath.Join(t.TempDir(), "phi3-orig0.gguf")
	if err := gguf.WriteFile(path, kvs, ts, 32); err != nil {
		t.Fatal(err)
	}
	for _, fa := range []bool{true, false} {
		t.Run(fmt.Sprintf("fa=%v", fa), func(t *testing.T) {
			opts := llamaOptions(t)
			opts.FlashAttn = fa
			opts.Threads = 2
			r := compareRun(t, path, []int32{1, 300, 301, 302}, opts)
			if r.same != r.nodes {
				t.Errorf("%d of %d nodes bit-identical; first: %v", r.same, r.nodes, r.diffs[0])
			}
		})
	}
}

// TestPhi3LongAndMicroBatchesMatchLlamaCpp: 300 tokens (a 512-cell cache,
// more than the fixture's original context: the long factors), in one
// batch and in llama_decode calls of 128, and 10 tokens in calls of 4, all
// bit-identical to llama.cpp.
func TestPhi3LongAndMicroBatchesMatchLlamaCpp(t *testing.T) {
	var long []int32
	for i := 0; i < 300; i++ {
		long = append(long, int32(1+(i*37)%300))
	}
	for _, c := range []struct {
		typ      string
		ftype    int
		toks     []int32
		ubatches []int
	}{
		{"q8_0", 7, long, nil},
		{"q4_k_m", 15, long, []int{128, 128, 44}},
		{"f16", 1, long[:10], []int{4, 4, 2}},
	} {
		path := fixturePath(t, "phi3", c.typ, c.ftype)
		for _, fa := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/T=%d/fa=%v/%v", c.typ, len(c.toks), fa, c.ubatches), func(t *testing.T) {
				opts := llamaOptions(t)
				opts.FlashAttn = fa
				opts.Threads = 2
				opts.UBatches = c.ubatches
				r := compareRun(t, path, c.toks, opts)
				if r.same != r.nodes {
					t.Errorf("%d of %d nodes bit-identical; first difference %s", r.same, r.nodes, r.diffs[0])
				}
				t.Logf("%d of %d nodes bit-identical", r.same, r.nodes)
			})
		}
	}
}

// TestPhi3RealVocabMatchesLlamaCpp builds the phi3 fixture with the Phi-3
// vocabulary (shared/vocab/ggml-vocab-phi-3.gguf, 32064 tokens; the model
// is then named "phi3", so both tokenizers give the special tokens
// RSTRIP): a chat prompt tokenizes to the same ids in Go and in llama.cpp,
// and every node of its run is bit-identical to llama.cpp's.
func TestPhi3RealVocabMatchesLlamaCpp(t *testing.T) {
	vf, err := gguf.Open(filepath.Join(sharedDirOrSkip(t), "vocab", "ggml-vocab-phi-3.gguf"))
	if err != nil {
		t.Skipf("no Phi-3 vocabulary: %v", err)
	}
	defer vf.Close()
	cfg := fixture.Default("phi3")
	cfg.Vocab = vf
	path := fixturePathCfg(t, "phi3-vocab", cfg, "q8_0", 7)

	const prompt = "<|user|>\nHello world, this is <|end|>\n<|assistant|>"
	lm, err := llamacpp.LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := lm.Tokenize(prompt, true, true)
	lm.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := tokenizer.VocabFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.NewTokenizer(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tok.Encode(prompt, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("tokens %v, llama.cpp %v", got, want)
	}
	t.Logf("%q: %v", prompt, got)
	for _, fa := range []bool{true, false} {
		t.Run(fmt.Sprintf("fa=%v", fa), func(t *testing.T) {
			opts := llamaOptions(t)
			opts.FlashAttn = fa
			opts.Threads = 2
			r := compareRun(t, path, want, opts)
			if r.same != r.nodes {
				t.Errorf("%d of %d nodes bit-identical; first: %v", r.same, r.nodes, r.diffs[0])
			}
		})
	}
}

// TestPhi3NoFFLengthLlamaCppRefuses: without phi3.feed_forward_length
// llama.cpp does not load the model (n_ff 0: ffn_down's shape), as Load
// refuses it.
func TestPhi3NoFFLengthLlamaCppRefuses(t *testing.T) {
	kvs, ts, err := fixture.Build(fixture.Default("phi3"))
	if err != nil {
		t.Fatal(err)
	}
	kvs = slices.DeleteFunc(kvs, func(kv gguf.KV) bool { return kv.Key == "phi3.feed_forward_length" })
	path := filepath.Join(t.TempDir(), "phi3-noff.gguf")
	if err := gguf.WriteFile(path, kvs, ts, 32); err != nil {
		t.Fatal(err)
	}
	if m, err := llamacpp.LoadModel(path); err == nil {
		m.Close()
		t.Fatal("llama.cpp loads phi3 without feed_forward_length")
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Load(f); err == nil {
		t.Fatal("Load accepts phi3 without feed_forward_length")
	}
}
