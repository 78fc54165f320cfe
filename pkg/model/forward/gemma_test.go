package forward

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// loadEdited builds the default fixture of arch, lets edit change its
// metadata and tensors, and loads it.
func loadEdited(t *testing.T, arch string, edit func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor)) (*Model, error) {
	t.Helper()
	kvs, ts, err := fixture.Build(fixture.Default(arch))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		kvs, ts = edit(kvs, ts)
	}
	return Load(writeGGUF(t, kvs, ts))
}

func withKV(key string, v any) func([]gguf.KV, []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
	return func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
		for i := range kvs {
			if kvs[i].Key == key {
				kvs[i] = gguf.NewKV(key, v)
				return kvs, ts
			}
		}
		return append(kvs, gguf.NewKV(key, v)), ts
	}
}

func TestGemmaHparams(t *testing.T) {
	for _, c := range []struct {
		arch               string
		edit               func([]gguf.KV, []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor)
		swa                []bool
		nSWA               int
		attnCap, finalCap  float32
		ropeSWA, ropeScale float32
	}{
		{"gemma2", nil, []bool{true, false}, 4, 50, 30, 0, 0},
		// llama.cpp's defaults when the keys are absent
		{"gemma2", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return slices.DeleteFunc(kvs, func(kv gguf.KV) bool {
				return strings.HasSuffix(kv.Key, "softcapping") || strings.HasSuffix(kv.Key, "sliding_window")
			}), ts
		}, []bool{true, false}, 4096, 50, 30, 0, 0},
		{"gemma3", nil, []bool{true, true, true, true, true, false}, 4, 0, 0, 10000, 1},
		{"gemma3", withKV("gemma3.final_logit_softcapping", float32(30)), []bool{true, true, true, true, true, false}, 4, 0, 30, 10000, 1},
		// no window: no SWA layers, no SWA RoPE
		{"gemma3", withKV("gemma3.attention.sliding_window", uint32(0)), []bool(nil), 0, 0, 0, 0, 0},
	} {
		m, err := loadEdited(t, c.arch, c.edit)
		if err != nil {
			t.Fatal(err)
		}
		h := m.Hparams
		if !slices.Equal(h.SWALayers, c.swa) || h.NSWA != c.nSWA || h.AttnSoftcap != c.attnCap || h.FinalSoftcap != c.finalCap || h.RopeBaseSWA != c.ropeSWA || h.RopeScaleSWA != c.ropeScale {
			t.Errorf("%s: SWA layers %v, n_swa %d, soft-capping %g/%g, SWA RoPE %g/%g; want %v, %d, %g/%g, %g/%g",
				c.arch, h.SWALayers, h.NSWA, h.AttnSoftcap, h.FinalSoftcap, h.RopeBaseSWA, h.RopeScaleSWA,
				c.swa, c.nSWA, c.attnCap, c.finalCap, c.ropeSWA, c.ropeScale)
		}
		if want := float32(1 / math.Sqrt(64)); h.QueryScale != want {
			t.Errorf("%s: Q scale %g, want %g", c.arch, h.QueryScale, want)
		}
	}
}

func TestGemmaQueryScale(t *testing.T) {
	for _, c := range []struct {
		layers, layers27B, embd, head, headDim int
		want                                   float32
	}{
		{26, 46, 2304, 8, 256, 1.0 / 16},                     // gemma-2-2b: 1/√head_dim
		{46, 46, 4608, 32, 128, float32(1 / math.Sqrt(144))}, // gemma-2-27b: 1/√(n_embd/n_head)
		{62, 62, 5376, 32, 128, float32(1 / math.Sqrt(168))}, // gemma-3-27b
		{34, 62, 2560, 8, 256, 1.0 / 16},                     // gemma-3-4b
	} {
		h := &Hparams{NLayer: c.layers, NEmbd: c.embd, NHead: c.head, HeadDimK: c.headDim}
		if got := gemmaQueryScale(h, c.layers27B); got != c.want {
			t.Errorf("%d layers, embd %d, %d heads of %d: Q scale %g, want %g", c.layers, c.embd, c.head, c.headDim, got, c.want)
		}
	}
}

func TestGemmaLoadErrors(t *testing.T) {
	for _, c := range []struct {
		name, arch string
		edit       func([]gguf.KV, []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor)
		want       string
	}{
		{"no window", "gemma2", withKV("gemma2.attention.sliding_window", uint32(0)), "sliding_window is 0"},
		{"no attention soft-capping", "gemma2", withKV("gemma2.attn_logit_softcapping", float32(0)), "soft-capping"},
		{"untied output", "gemma2", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return kvs, append(ts, gguf.WriteTensor{Name: "output.weight", Ne: []int64{256, 512}, Type: quant.F32, Data: make([]byte, 4*256*512)})
		}, "tied output"},
		{"no post norm", "gemma3", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return kvs, slices.DeleteFunc(ts, func(w gguf.WriteTensor) bool { return w.Name == "blk.3.post_ffw_norm.weight" })
		}, `missing tensor "blk.3.post_ffw_norm.weight"`},
		{"no q norm", "gemma3", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return kvs, slices.DeleteFunc(ts, func(w gguf.WriteTensor) bool { return w.Name == "blk.0.attn_q_norm.weight" })
		}, `missing tensor "blk.0.attn_q_norm.weight"`},
	} {
		_, err := loadEdited(t, c.arch, c.edit)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		if c.name != "no post norm" && c.name != "no q norm" && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v is not ErrUnsupported", c.name, err)
		}
	}
}
