package reference

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRealLogits(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "llamacpp", "llama-debug-S-Q8_0")
	for _, p := range []string{dir, filepath.Join(dir, "llamacpp-S-Q8_0.bin"), filepath.Join(dir, "llamacpp-S-Q8_0.txt")} {
		s, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		info := s.Describe()
		if info.Kind != KindLogits || !reflect.DeepEqual(info.Tokens, sRunTokens) || info.Prompt != "Hello world, this is a test" || len(info.Warnings) != 0 {
			t.Errorf("%s: %+v", p, info)
		}
		nodes := s.Nodes()
		if len(nodes) != 1 || nodes[0].Key != "result_output" || !reflect.DeepEqual(nodes[0].Ne, []int64{32000, 1}) ||
			nodes[0].Data != FullData || !reflect.DeepEqual(nodes[0].Positions, []int{7}) {
			t.Errorf("%s: nodes %+v", p, nodes)
		}
		tt, err := s.Load("result_output")
		if err != nil {
			t.Fatal(err)
		}
		// 128000 bytes / 4 = 32000 = n_vocab: one row, the last token's.
		if len(tt.Data) != 32000 || tt.Data[0] != -0.049870394 && math.Abs(float64(tt.Data[0])+0.0498704) > 5e-8 || tt.Data[31999] == 0 {
			t.Errorf("%s: logits %v ... %v", p, tt.Data[:3], tt.Data[31999])
		}
		if _, err := s.Load("embd"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Load(embd): %v", err)
		}
	}

	// Without the .bin file the .txt becomes partial data at its printed
	// precision.
	tmp := t.TempDir()
	for _, f := range []string{"llamacpp-S-Q8_0.txt", "llamacpp-S-Q8_0-tokens.bin", "llamacpp-S-Q8_0-prompt.txt"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(tmp, f), b, 0o644)
	}
	s, err := Open(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Nodes()[0]; n.Data != PartialData || n.Ne[0] != 32000 {
		t.Errorf("txt only: %+v", n)
	}
	tt, err := s.Load("result_output")
	if err != nil {
		t.Fatal(err)
	}
	if p := tt.Partial; len(p.Index) != 32000 || p.Values[0] != -0.0498704 || p.HasSum || p.Quantum <= 0 || p.Quantum > 1e-5 {
		t.Errorf("txt only: %v %v quantum %v", p.Index[:2], p.Values[:2], p.Quantum)
	}
}

// writeLogits writes a llama-debug output set for model "m" into dir.
func writeLogits(t *testing.T, dir string, logits []float32, tokens []int32, txt string) {
	t.Helper()
	b := make([]byte, 4*len(logits))
	for i, v := range logits {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	os.WriteFile(filepath.Join(dir, "llamacpp-m.bin"), b, 0o644)
	tb := make([]byte, 4*len(tokens))
	for i, v := range tokens {
		binary.LittleEndian.PutUint32(tb[4*i:], uint32(v))
	}
	os.WriteFile(filepath.Join(dir, "llamacpp-m-tokens.bin"), tb, 0o644)
	if txt != "" {
		os.WriteFile(filepath.Join(dir, "llamacpp-m.txt"), []byte(txt), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "llamacpp-m-prompt.txt"), []byte("prompt: a\nb\nn_tokens: 2\ntoken ids: 5, 6\n"), 0o644)
}

func TestLogitsErrors(t *testing.T) {
	dir := t.TempDir()
	writeLogits(t, dir, []float32{1, -2.5, 1e-7}, []int32{5, 6}, "0: 1\n1: -2.5\n2: 1e-07\n")
	l, err := OpenLogits(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Prompt != "a\nb" || l.Position() != 1 || len(l.Describe().Warnings) != 0 {
		t.Errorf("%+v", l.Describe())
	}

	// A text file that disagrees with the binary one, and token ids that
	// disagree with the prompt file: warnings.
	writeLogits(t, dir, []float32{1, -2.5, 1e-7}, []int32{5, 7}, "0: 1\n1: -2.6\n2: 1e-07\n")
	l, err = OpenLogits(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(l.Describe().Warnings, "\n")
	if !strings.Contains(w, "llamacpp-m.txt:2: logit 1 is -2.6 here but -2.5 in the .bin file") || !strings.Contains(w, "differ from the tokens file") {
		t.Errorf("warnings: %s", w)
	}

	os.WriteFile(filepath.Join(dir, "llamacpp-m.bin"), []byte{1, 2, 3}, 0o644)
	if _, err := OpenLogits(dir); err == nil || !strings.Contains(err.Error(), "not a positive multiple of 4") {
		t.Errorf("bad .bin: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "llamacpp-m.bin"), make([]byte, 8), 0o644)
	os.WriteFile(filepath.Join(dir, "llamacpp-m-tokens.bin"), []byte{1, 2}, 0o644)
	if _, err := OpenLogits(dir); err == nil || !strings.Contains(err.Error(), "llamacpp-m-tokens.bin: offset 0: size 2") {
		t.Errorf("bad tokens: %v", err)
	}
	os.Remove(filepath.Join(dir, "llamacpp-m-tokens.bin"))
	os.Remove(filepath.Join(dir, "llamacpp-m.txt"))
	l, err = OpenLogits(dir)
	if err != nil || l.Position() != -1 || l.Nodes()[0].Positions != nil || !strings.Contains(l.Describe().Warnings[0], "token positions unknown") {
		t.Errorf("missing tokens: %v %+v", err, l)
	}
	os.WriteFile(filepath.Join(dir, "llamacpp-other.bin"), make([]byte, 8), 0o644)
	if _, err := OpenLogits(dir); err == nil || !strings.Contains(err.Error(), "several models") {
		t.Errorf("two models: %v", err)
	}
	if l, err := OpenLogits(filepath.Join(dir, "llamacpp-other.bin")); err != nil || l.Nodes()[0].Ne[0] != 2 {
		t.Errorf("open by file: %v", err)
	}
	os.Remove(filepath.Join(dir, "llamacpp-m.bin"))
	os.Remove(filepath.Join(dir, "llamacpp-other.bin"))
	os.WriteFile(filepath.Join(dir, "llamacpp-m.txt"), []byte("0: 1\n2: 3\n"), 0o644)
	if _, err := OpenLogits(dir); err == nil || !strings.Contains(err.Error(), `llamacpp-m.txt:2: want "1: value"`) {
		t.Errorf("bad txt: %v", err)
	}
}

func TestSortNames(t *testing.T) {
	in := []string{
		"result_output", "l_out-1", "attn_norm-0", "embd", "ffn_out-0", "norm-0", "Qcur-0", "kq_soft_max-0",
		"Kcur-0", "Vcur-0", "kqv_out-0", "result_norm", "attn_out-0", "l_out-0", "ffn_up-0", "ffn_gate-0",
		"ffn_swiglu-0", "ffn_norm-0", "ffn_inp-0", "zzz-0", "norm", "attn_norm-1", "kq-0", "kqv-0", "attn_norm-10", "attn_norm-2",
	}
	want := []string{
		"embd",
		"norm-0", "attn_norm-0", "Qcur-0", "Kcur-0", "Vcur-0", "kq-0", "kq_soft_max-0", "kqv-0", "kqv_out-0", "attn_out-0",
		"ffn_inp-0", "ffn_norm-0", "ffn_gate-0", "ffn_up-0", "ffn_swiglu-0", "ffn_out-0", "l_out-0", "zzz-0",
		"attn_norm-1", "l_out-1", "attn_norm-2", "attn_norm-10",
		"norm", "result_norm", "result_output",
	}
	if got := SortNames(in); !reflect.DeepEqual(got, want) {
		t.Errorf("llama.cpp names:\n got %q\nwant %q", got, want)
	}
	hf := []string{"lm_head", "model.norm", "model.layers.1.mlp", "model.layers.0.mlp.down_proj", "model.layers.0.self_attn.q_proj",
		"model.embed_tokens", "model.layers.0.input_layernorm", "model.layers.0.mlp.gate_proj", "model.layers.0.self_attn.o_proj"}
	want = []string{"model.embed_tokens", "model.layers.0.input_layernorm", "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.o_proj",
		"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.down_proj", "model.layers.1.mlp", "model.norm", "lm_head"}
	if got := SortNames(hf); !reflect.DeepEqual(got, want) {
		t.Errorf("HF names:\n got %q\nwant %q", got, want)
	}
}

func TestNPYDirSource(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(WriteNPYFloat32(filepath.Join(dir, "attn_norm-0.npy"), []int64{8, 64}, make([]float32, 512)))
	must(WriteNPYFloat16(filepath.Join(dir, "embd.npy"), []int64{2, 3}, []uint16{0x3c00, 0, 0, 0, 0, 0x4000}))
	must(WriteNPYFloat32(filepath.Join(dir, "result_output.npy"), []int64{32000}, make([]float32, 32000)))
	os.WriteFile(filepath.Join(dir, "broken.npy"), []byte("nope"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	info := s.Describe()
	if info.Kind != KindNPYDir || len(info.Warnings) != 1 || !strings.Contains(info.Warnings[0], "broken.npy: offset 0: not a .npy file") {
		t.Errorf("info %+v", info)
	}
	var keys []string
	for _, n := range s.Nodes() {
		keys = append(keys, fmt.Sprintf("%s %s %v %s", n.Key, n.Type, n.Ne, n.Data))
	}
	// The unreadable file is listed (a comparison reports it), without a
	// shape.
	want := []string{"embd f16 [3 2] full", "attn_norm-0 f32 [64 8] full", "broken  [] unreadable", "result_output f32 [32000] full"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("nodes %q", keys)
	}
	e, err := s.Load("embd")
	if err != nil || !reflect.DeepEqual(e.Data, []float32{1, 0, 0, 0, 0, 2}) || !reflect.DeepEqual(e.Ne, []int64{3, 2}) {
		t.Errorf("embd: %+v %v", e, err)
	}
	if _, err := s.Load("broken"); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "broken.npy: offset 0: not a .npy file") {
		t.Errorf("Load(broken): %v", err)
	}
	if _, err := s.Load("gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(gone): %v", err)
	}
}

func TestOpenDetection(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); !os.IsNotExist(err) {
		t.Errorf("missing path: %v", err)
	}
	empty := t.TempDir()
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "not a reference directory") {
		t.Errorf("empty dir: %v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "x.npy")
	WriteNPYFloat32(p, []int64{1}, []float32{1})
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), "open its directory") {
		t.Errorf("single npy: %v", err)
	}
	txt := writeTemp(t, "notes.txt", "just\nsome text\n")
	if _, err := Open(txt); err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "no tensor header found") {
		t.Errorf("text file: %v", err)
	}
	lg := writeTemp(t, "run.log", string(readTestdata(t, "evalcb-snippet.log")))
	if s, err := Open(lg); err != nil || s.Describe().Kind != KindLog || len(s.Nodes()) != 12 {
		t.Errorf("log: %v", err)
	}
}
