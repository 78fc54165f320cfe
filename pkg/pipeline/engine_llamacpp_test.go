//go:build llamacpp

package pipeline

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// writeFloatEngine writes the dump of a float32 engine: layerdiff's exact
// forward pass (flash attention off, float32 cache) with a planted bug
// (variant, nil for none), every stored value given a float32 engine's
// last-bit noise, without system_info (not llama.cpp). keep selects the
// nodes recorded (nil: every non-view node).
func writeFloatEngine(t *testing.T, dir, modelPath string, toks []int32, v *forward.Variant, keep *regexp.Regexp, f16 bool) reference.Source {
	t.Helper()
	f, err := gguf.Open(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := forward.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := forward.DefaultOptions()
	opts.Numerics, opts.FlashAttn, opts.KVType, opts.Variant = forward.NumericsF64, false, quant.F32, v
	man := &reference.Manifest{Format: reference.FormatName, FormatVersion: reference.FormatVersion, LayerdiffVersion: "test-float-engine", Tokens: toks, FlashAttn: "off"}
	var keys reference.KeyMaker
	rng := rand.New(rand.NewPCG(7, 11))
	_, err = m.Run(toks, opts, forward.RecorderFunc(func(n *forward.Node, x *tensor.Tensor) error {
		key := keys.Next(n.Name)
		if n.View || n.Type != quant.F32 || (keep != nil && !keep.MatchString(key)) || strings.HasPrefix(n.Name, "cache_") {
			return nil
		}
		data := make([]float32, len(x.Data))
		for i, v := range x.Data {
			// one float32 rounding's worth of noise
			data[i] = v * float32(1+(rng.Float64()-0.5)*0x1p-23)
		}
		file := reference.NodeFileName(len(man.Nodes), key)
		typ := "f32"
		if f16 {
			// an engine storing (and computing in) f16
			typ = "f16"
			bits := make([]uint16, len(data))
			for i, v := range x.Data {
				bits[i] = quant.F32ToF16(v)
				data[i] = quant.F16ToF32(bits[i])
			}
			if err := reference.WriteNPYFloat16(filepath.Join(dir, file), reference.NPYShape(x.Ne), bits); err != nil {
				return err
			}
		} else if err := reference.WriteNPYFloat32(filepath.Join(dir, file), reference.NPYShape(x.Ne), data); err != nil {
			return err
		}
		st := reference.ComputeStats(data)
		man.Nodes = append(man.Nodes, reference.ManifestNode{Index: len(man.Nodes), Key: key, Name: n.Name, Type: typ, Ne: x.Ne, File: file, Stats: &st})
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := man.Write(dir); err != nil {
		t.Fatal(err)
	}
	src, err := reference.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestCompareModelFloatEngine: a float engine's dump compared with
// llama.cpp's with --model passes clean and blames each planted bug at its
// op by isolation, with the hint that names it.
func TestCompareModelFloatEngine(t *testing.T) {
	model := fixtureModel(t, "llama", "q8_0")
	ref := dumpOf(t, model, "off")
	toks := ref.Describe().Tokens
	dir := t.TempDir()
	eps := float32(1e-5)
	cases := []struct {
		name    string
		v       *forward.Variant
		keep    string
		key, op string // blamed
		hint    string
		noBOS   bool
		fa      string // the reference's flash attention: "off" unless set
		f16     bool   // the engine stores f16
	}{
		{name: "clean"},
		{name: "clean-f16", f16: true},
		{name: "f16-rope-halves", f16: true, v: &forward.Variant{RopeOtherMode: true}, key: "Qcur-0#2", op: "ROPE", hint: "rope-mode"},
		{name: "clean-sparse", keep: `^(attn_norm-0|ffn_out-0|result_output)$`},
		{name: "eps-div10", v: &forward.Variant{RMSEps: eps / 10}, key: "norm-0", op: "RMS_NORM", hint: "rms-eps"},
		{name: "eps-x10", v: &forward.Variant{RMSEps: eps * 10}, key: "norm-0", op: "RMS_NORM", hint: "rms-eps"},
		{name: "rope-halves", v: &forward.Variant{RopeOtherMode: true}, key: "Qcur-0#2", op: "ROPE", hint: "rope-mode"},
		{name: "pos-offset", v: &forward.Variant{PosOffset: 1}, key: "Qcur-0#2", op: "ROPE", hint: "rope-position"},
		{name: "rope-base", v: &forward.Variant{RopeBase: 500000}, key: "Qcur-0#2", op: "ROPE", hint: "rope-base"},
		{name: "softmax-scale", v: &forward.Variant{AttnScale: 1.0 / 64}, key: "kq_soft_max-0", op: "SOFT_MAX", hint: HintSoftmaxScale},
		{name: "gqa-tile", v: &forward.Variant{GQATile: true}, key: "kq-0", op: "MUL_MAT", hint: HintGQAMapping},
		{name: "gelu", v: &forward.Variant{Act: "gelu"}, key: "ffn_swiglu-0", op: "SWIGLU", hint: HintActivation},
		{name: "transposed-wo", v: &forward.Variant{TransposedWeight: "blk.0.attn_output.weight"}, key: "attn_out-0", op: "MUL_MAT", hint: "weight-transposed"},
		{name: "fa-clean", fa: "on"},
		{name: "fa-softmax-scale", fa: "on", v: &forward.Variant{AttnScale: 1.0 / 64}, key: "kq_soft_max-0", op: "SOFT_MAX", hint: HintSoftmaxScale},
		{name: "fa-gqa-tile", fa: "on", v: &forward.Variant{GQATile: true}, key: "kq-0", op: "MUL_MAT", hint: HintGQAMapping},
		{name: "no-bos", noBOS: true, key: "inp_embd", op: "GET_ROWS", hint: "bos"},
		{name: "sparse-softmax-scale", v: &forward.Variant{AttnScale: 1.0 / 64}, keep: `^(attn_norm-0|ffn_out-0|result_output)$`, key: "kq_soft_max-0", op: "SOFT_MAX", hint: HintSoftmaxScale},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var keep *regexp.Regexp
			if tc.keep != "" {
				keep = regexp.MustCompile(tc.keep)
			}
			etoks := toks
			if tc.noBOS {
				etoks = toks[1:]
			}
			eng := writeFloatEngine(t, filepath.Join(dir, tc.name), model, etoks, tc.v, keep, tc.f16)
			r := reference.Source(ref)
			if tc.fa == "on" {
				r = dumpOf(t, model, "on")
			}
			rep, err := CompareModel(r, eng, model, ModelCompareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(summary(rep))
			if rep.Blame != nil {
				t.Log(strings.Join(rep.Blame.Evidence, "\n"), "\n", hintTexts(rep.Blame.Hints))
			}
			if rep.Meta.Mode != ModeIsolation {
				t.Errorf("mode %q", rep.Meta.Mode)
			}
			if tc.key == "" {
				wantPass(t, tc.name, rep)
				return
			}
			b := rep.Blame
			if rep.Verdict != compare.VerdictFail || b == nil {
				t.Fatalf("not caught: %s", summary(rep))
			}
			if b.Key != tc.key || b.Op != tc.op || b.By != "isolation" {
				t.Errorf("blamed %s (%s) by %s, want %s (%s) by isolation: %s\nevidence %q", b.Key, b.Op, b.By, tc.key, tc.op, summary(rep), b.Evidence)
			}
			var kinds []string
			for _, h := range b.Hints {
				kinds = append(kinds, h.Kind)
			}
			if len(kinds) == 0 || kinds[0] != tc.hint {
				t.Errorf("hints %v, want %s first: %s", kinds, tc.hint, hintTexts(b.Hints))
			}
		})
	}
}

func hintTexts(hs []compare.Hint) string {
	var s []string
	for _, h := range hs {
		s = append(s, fmt.Sprintf("[%s] %s", h.Kind, h.Text))
	}
	return strings.Join(s, "\n")
}
