package forward

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
)

// TestLoadExperts: the mixture-of-experts metadata Load accepts and
// refuses, on fixtures whose keys are changed.
func TestLoadExperts(t *testing.T) {
	for _, tc := range []struct {
		name, family string
		set          map[string]any // keys to set (nil value: delete)
		unsupported  bool           // the error wraps ErrUnsupported
		want         string         // part of the error; "" loads
		experts      [3]int         // NExpert, NExpertUsed, NFFExp when it loads
	}{
		{"qwen3moe", "qwen3moe", nil, false, "", [3]int{4, 2, 256}},
		{"mixtral", "mixtral", nil, false, "", [3]int{4, 2, 512}},
		{"qwen3moe without expert_feed_forward_length", "qwen3moe", map[string]any{"qwen3moe.expert_feed_forward_length": nil}, false, "", [3]int{4, 2, 256}},
		{"dense qwen3 with experts", "qwen3", map[string]any{"qwen3.expert_count": uint32(4)}, true, "mixture-of-experts", [3]int{}},
		{"more used than experts", "mixtral", map[string]any{"llama.expert_used_count": uint32(5)}, false, "expert_used_count = 5", [3]int{}},
		{"no expert used", "qwen3moe", map[string]any{"qwen3moe.expert_used_count": nil}, false, "want 1 to 4", [3]int{}},
		{"expert groups", "qwen3moe", map[string]any{"qwen3moe.expert_group_count": uint32(2)}, true, "expert groups", [3]int{}},
		{"too many experts", "mixtral", map[string]any{"llama.expert_count": uint32(513)}, false, "more than llama.cpp's 512", [3]int{}},
		{"experts of another count", "mixtral", map[string]any{"llama.expert_count": uint32(8)}, false, "ffn_gate_inp.weight", [3]int{}},
		{"mixtral without feed_forward_length", "mixtral", map[string]any{"llama.feed_forward_length": nil}, false, "without llama.feed_forward_length", [3]int{}},
		// gpt-oss: expert_feed_forward_length and the sliding window are required
		{"gpt-oss", "gpt-oss", nil, false, "", [3]int{4, 2, 256}},
		{"gpt-oss without expert_feed_forward_length", "gpt-oss", map[string]any{"gpt-oss.expert_feed_forward_length": nil}, false, "expert_feed_forward_length", [3]int{}},
		{"gpt-oss without sliding_window", "gpt-oss", map[string]any{"gpt-oss.attention.sliding_window": nil}, false, "sliding_window", [3]int{}},
		{"gpt-oss without experts", "gpt-oss", map[string]any{"gpt-oss.expert_count": nil}, true, "expert_count", [3]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kvs, ts, err := fixture.Build(fixture.Default(tc.family))
			if err != nil {
				t.Fatal(err)
			}
			var out []gguf.KV
			for _, kv := range kvs {
				if v, ok := tc.set[kv.Key]; ok {
					if v != nil {
						out = append(out, gguf.NewKV(kv.Key, v))
					}
					delete(tc.set, kv.Key)
					continue
				}
				out = append(out, kv)
			}
			for k, v := range tc.set {
				if v != nil {
					out = append(out, gguf.NewKV(k, v))
				}
			}
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := gguf.WriteFile(path, out, ts, 32); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := Load(f)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				h := m.Hparams
				if got := [3]int{h.NExpert, h.NExpertUsed, h.NFFExp}; got != tc.experts {
					t.Errorf("experts, used, width %v, want %v", got, tc.experts)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("error %v, want one with %q (unsupported %v)", err, tc.want, tc.unsupported)
			}
		})
	}
}
