package reference

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

func TestParseNameMap(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		rules    []string // Rules() of the map, nil when an error is wanted
		err      string   // substring of the error
		maps     map[string]string
	}{
		{name: "layers and comments", in: "# my engine\n\nblk{L}.wq = Qcur-{L}   # the projection\n  tok = inp_embd\n\tfinal=result_norm\n",
			rules: []string{"blk{L}.wq = Qcur-{L}", "tok = inp_embd", "final = result_norm"},
			maps:  map[string]string{"blk12.wq": "Qcur-12", "tok": "inp_embd", "final": "result_norm", "blk.wq": "", "blkx.wq": "", "blk01.wq": ""}},
		{name: "occurrence is not a comment", in: "rope_q.{L} = Qcur-{L}#2 # the ROPE\n",
			rules: []string{"rope_q.{L} = Qcur-{L}#2"}, maps: map[string]string{"rope_q.3": "Qcur-3#2"}},
		{name: "view suffix", in: "q{L} = Qcur-{L} (reshaped)\n", rules: []string{"q{L} = Qcur-{L} (reshaped)"}},
		{name: "CRLF", in: "a = inp_embd\r\nb = result_norm\r\n", rules: []string{"a = inp_embd", "b = result_norm"}},
		{name: "no equals", in: "a = inp_embd\nnonsense\n", err: "m.txt:2: want ENGINE_NAME = LLAMACPP_NAME"},
		{name: "empty left", in: " = inp_embd\n", err: "m.txt:1: empty engine name"},
		{name: "empty right", in: "a = # nothing\n", err: "m.txt:1: empty llama.cpp name"},
		{name: "two equals", in: "a = b = c\n", err: "m.txt:1: more than one '='"},
		{name: "layer on one side", in: "x\n=\n", err: "m.txt:1: want"},
		{name: "layer on the left only", in: "\n\nl{L} = result_norm\n", err: "m.txt:3: {L} must appear on both sides"},
		{name: "two layers", in: "a{L}{L} = b-{L}\n", err: "m.txt:1: \"a{L}{L}\": more than one {L}"},
		{name: "other placeholder", in: "a{N} = b-{N}\n", err: "m.txt:1: \"a{N}\": the only placeholder is {L}"},
		{name: "space in the llama.cpp name", in: "a = Qcur 0\n", err: "m.txt:1: llama.cpp name \"Qcur 0\" has a space"},
		{name: "duplicate", in: "a = inp_embd\na = result_norm\n", err: "m.txt:2: \"a\" is already mapped on line 1"},
		{name: "control character", in: "a\x01 = b\n", err: "m.txt:1: \"a\\x01\": control character"},
		{name: "name starting with #", in: "a =#2\n", err: "m.txt:1: \"#2\": a name cannot start with '#'"},
		{name: "empty", in: "# only comments\n\n", err: "m.txt: no mapping"},
		{name: "long line", in: "a = " + strings.Repeat("x", maxNameMapLine) + "\n", err: "m.txt:1: line longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseNameMap(strings.NewReader(tc.in), "m.txt")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.rules, m.Rules()); d != "" {
				t.Errorf("rules (-want +got):\n%s", d)
			}
			for in, want := range tc.maps {
				got, ok := m.Map(in)
				if got != want || ok != (want != "") {
					t.Errorf("Map(%q) = %q, %v; want %q", in, got, ok, want)
				}
			}
		})
	}
}

// FuzzParseNameMap: any input parses or fails with FILE:LINE, never
// panics, and a parsed map's rules parse back to themselves.
func FuzzParseNameMap(f *testing.F) {
	for _, s := range []string{
		"blk{L}.wq = Qcur-{L}  # x\n", "a = Qcur-{L}#2\n", "# c\n\nx=y\r\n", "a{L} = b-{L} (reshaped)#2\n",
		"a = b = c", "{L}={L}", "{L = L}", "a\x00 = b", "#\n#\n= x\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseNameMap(strings.NewReader(in), "f.map")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.map:") {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		back, err := ParseNameMap(strings.NewReader(strings.Join(m.Rules(), "\n")), "back")
		if err != nil {
			t.Fatalf("rules %q do not parse back: %v", m.Rules(), err)
		}
		if !slices.Equal(back.Rules(), m.Rules()) {
			t.Fatalf("round trip %q → %q", m.Rules(), back.Rules())
		}
		for _, r := range m.rules {
			name := strings.Replace(r.from, layerVar, "7", 1)
			if got, ok := m.Map(name); !ok || got == "" {
				t.Fatalf("Map(%q) of rule %q = %q, %v", name, r.from, got, ok)
			}
		}
	})
}

// hfPermute puts GGUF-order projection outputs in HF's order, as
// convert_hf_to_gguf.py's inverse: GGUF rows are HF's reshaped
// (n_head, 2, hd/2) with axes 1 and 2 swapped, so GGUF (h, i, j) is HF
// (h, j, i).
func hfPermute(gguf []float32, hd int) []float32 {
	out := make([]float32, len(gguf))
	for h := 0; h < len(gguf)/hd; h++ {
		for i := 0; i < hd/2; i++ {
			for j := 0; j < 2; j++ {
				out[h*hd+j*(hd/2)+i] = gguf[h*hd+i*2+j]
			}
		}
	}
	return out
}

func TestUndoRotateHalf(t *testing.T) {
	for _, hd := range []int{2, 4, 8, 64} {
		x := make([]float32, 3*hd*5)
		for i := range x {
			x[i] = float32(i)
		}
		hf := hfPermute(x, hd)
		if hd > 2 && slices.Equal(hf, x) {
			t.Fatalf("hd %d: the HF permutation changed nothing", hd)
		}
		got := make([]float32, len(x))
		UndoRotateHalf(got, hf, hd)
		if !slices.Equal(got, x) {
			t.Errorf("hd %d: undo(hf(x)) != x: %v", hd, got[:hd])
		}
	}
	// The first head of size 4 by hand: GGUF (x0 x1 x2 x3) holds the
	// rotation pairs (x0, x1), (x2, x3); HF keeps halves (x0 x2 | x1 x3).
	got := make([]float32, 4)
	UndoRotateHalf(got, []float32{0, 2, 1, 3}, 4)
	if !slices.Equal(got, []float32{0, 1, 2, 3}) {
		t.Errorf("by hand: %v", got)
	}
}

// namesSource is a Source held in memory.
type namesSource struct {
	nodes []NodeInfo
	data  map[string][]float32
}

func (s *namesSource) Describe() Info    { return Info{Kind: KindNPYDir, Path: "mem", Format: "memory"} }
func (s *namesSource) Nodes() []NodeInfo { return s.nodes }
func (s *namesSource) Load(key string) (*tensor.Tensor, error) {
	for _, n := range s.nodes {
		if n.Key == key {
			return &tensor.Tensor{Key: key, Name: n.Name, Op: n.Op, Ne: n.Ne, Data: slices.Clone(s.data[key])}, nil
		}
	}
	return nil, fmt.Errorf("mem: %q: %w", key, ErrNotFound)
}

func newNamesSource(nodes ...NodeInfo) *namesSource {
	s := &namesSource{data: map[string][]float32{}}
	for _, n := range nodes {
		if n.Key == "" {
			n.Key = n.Name
		}
		n.Data = FullData
		s.nodes = append(s.nodes, n)
		v := make([]float32, tensor.Numel(n.Ne))
		for i := range v {
			v[i] = float32(i)
		}
		s.data[n.Key] = v
	}
	return s
}

// llamaRef is a reference graph of one llama layer's mapped nodes.
func llamaRef() []NodeInfo {
	return []NodeInfo{
		{Key: "inp_embd", Name: "inp_embd", Op: "GET_ROWS", Ne: []int64{16, 3}},
		{Key: "norm-0", Name: "norm-0", Op: "RMS_NORM", Ne: []int64{16, 3}},
		{Key: "attn_norm-0", Name: "attn_norm-0", Op: "MUL", Ne: []int64{16, 3}},
		{Key: "Qcur-0", Name: "Qcur-0", Op: "MUL_MAT", Ne: []int64{16, 3}},
		{Key: "Qcur-0 (reshaped)", Name: "Qcur-0 (reshaped)", Op: "RESHAPE", Ne: []int64{4, 4, 3}},
		{Key: "Qcur-0#2", Name: "Qcur-0", Op: "ROPE", Ne: []int64{4, 4, 3}},
		{Key: "Kcur-0", Name: "Kcur-0", Op: "MUL_MAT", Ne: []int64{8, 3}},
		{Key: "Kcur-0 (reshaped)", Name: "Kcur-0 (reshaped)", Op: "RESHAPE", Ne: []int64{4, 2, 3}},
		{Key: "norm", Name: "norm", Op: "RMS_NORM", Ne: []int64{16, 3}},
		{Key: "result_norm", Name: "result_norm", Op: "MUL", Ne: []int64{16, 3}},
		{Key: "result_output", Name: "result_output", Op: "MUL_MAT", Ne: []int64{32, 3}},
	}
}

func TestWithNames(t *testing.T) {
	meta, err := BuiltinNameMap(NamesMeta, "")
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ key, name, op string }
	for _, tc := range []struct {
		what  string
		nodes []NodeInfo
		ref   []NodeInfo
		want  []want
		warn  string // substring of the one warning, "" for none
	}{
		{what: "meta names", nodes: []NodeInfo{
			{Name: "tok_embeddings", Ne: []int64{16, 3}},
			{Name: "layers.0.attention.wq", Ne: []int64{16, 3}},
			{Name: "something_else", Ne: []int64{16, 3}},
			{Name: "norm", Ne: []int64{16, 3}},
			{Name: "output", Ne: []int64{32, 3}},
		}, ref: llamaRef(), want: []want{
			{"inp_embd", "inp_embd", "GET_ROWS"}, {"Qcur-0", "Qcur-0", "MUL_MAT"}, {"something_else", "something_else", ""},
			{"result_norm", "result_norm", "MUL"}, {"result_output", "result_output", "MUL_MAT"},
		}},
		{what: "sources renamed", nodes: []NodeInfo{{Name: "layers.0.attention.wq", Op: "MUL_MAT", Src: []string{"blk.0.attn_q.weight", "layers.0.attention_norm"}, Ne: []int64{16, 3}}},
			ref: llamaRef(), want: []want{{"Qcur-0", "Qcur-0", "MUL_MAT"}}},
		{what: "shape rules it out", nodes: []NodeInfo{{Name: "norm", Ne: []int64{15, 3}}}, ref: llamaRef(),
			want: []want{{"unmatched:norm", "unmatched:norm", ""}},
			warn: "norm → result_norm: shapes {16, 3} and {15, 3} have no element correspondence"},
		{what: "one token fewer (no BOS) still pairs", nodes: []NodeInfo{{Name: "norm", Ne: []int64{16, 2}}}, ref: llamaRef(),
			want: []want{{"result_norm", "result_norm", "MUL"}}},
		{what: "shape unchecked without a reference", nodes: []NodeInfo{{Name: "norm", Ne: []int64{15, 3}}},
			want: []want{{"result_norm", "result_norm", "MUL"}}},
		{what: "the engine's op contradicts", nodes: []NodeInfo{{Name: "norm", Op: "RMS_NORM", Ne: []int64{16, 3}}},
			want: []want{{"unmatched:norm", "unmatched:norm", ""}}, warn: "norm → result_norm: it is a RMS_NORM, result_norm is a MUL"},
		{what: "the engine has the name already", nodes: []NodeInfo{{Name: "norm", Ne: []int64{16, 3}}, {Name: "result_norm", Ne: []int64{16, 3}}},
			want: []want{{"unmatched:norm", "unmatched:norm", ""}, {"result_norm", "result_norm", ""}}, warn: "norm → result_norm: the engine has a tensor named result_norm already"},
		{what: "two names for one node", nodes: []NodeInfo{{Name: "norm", Ne: []int64{16, 3}}, {Name: "norm", Key: "norm#2", Ne: []int64{16, 3}}},
			want: []want{{"result_norm", "result_norm", "MUL"}, {"unmatched:norm#2", "unmatched:norm", ""}}, warn: "norm maps it to result_norm too"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			src, warn, err := WithNames(newNamesSource(tc.nodes...), meta, NameOptions{Ref: tc.ref})
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for i, n := range src.Nodes() {
				if srcs := tc.nodes[i].Src; srcs != nil {
					if d := cmp.Diff([]string{srcs[0], "attn_norm-0"}, n.Src); d != "" {
						t.Errorf("sources (-want +got):\n%s", d)
					}
				}
				got = append(got, want{n.Key, n.Name, n.Op})
				ld, err := src.Load(n.Key)
				if err != nil {
					t.Fatalf("Load(%q): %v", n.Key, err)
				}
				if ld.Key != n.Key || ld.Name != n.Name || ld.Op != n.Op {
					t.Errorf("Load(%q) gives %q %q %q", n.Key, ld.Key, ld.Name, ld.Op)
				}
			}
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); d != "" {
				t.Errorf("nodes (-want +got):\n%s", d)
			}
			switch {
			case tc.warn == "" && len(warn) > 0:
				t.Errorf("unexpected warnings %q", warn)
			case tc.warn != "" && (len(warn) != 1 || !strings.Contains(warn[0], tc.warn)):
				t.Errorf("warnings %q, want one with %q", warn, tc.warn)
			}
			if _, err := src.Load("nosuch"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Load(nosuch): %v", err)
			}
		})
	}
}

// TestWithNamesRefOps: with the reference's nodes, a name map's op picks
// the node of that op, and an occurrence or op the reference lacks is
// refused rather than paired with another node of the name.
func TestWithNamesRefOps(t *testing.T) {
	m, err := ParseNameMap(strings.NewReader("rope.{L} = Qcur-{L}#2\nq3 = Qcur-0#3\nq.{L} = Qcur-{L}\n"), "m")
	if err != nil {
		t.Fatal(err)
	}
	src, warn, err := WithNames(newNamesSource(
		NodeInfo{Name: "rope.0", Ne: []int64{4, 4, 3}},
		NodeInfo{Name: "q3", Ne: []int64{4, 4, 3}},
		NodeInfo{Name: "q.0", Op: "ROPE", Ne: []int64{16, 3}},
	), m, NameOptions{Ref: llamaRef()})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range src.Nodes() {
		names = append(names, n.Name)
	}
	if d := cmp.Diff([]string{"Qcur-0#2", "unmatched:q3", "Qcur-0"}, names); d != "" {
		t.Errorf("names (-want +got):\n%s", d)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "q3 → Qcur-0#3: the reference has 2 nodes named Qcur-0") {
		t.Errorf("warnings %q", warn)
	}
}

func TestWithNamesHFLlama(t *testing.T) {
	hf, err := BuiltinNameMap(NamesHF, "llama")
	if err != nil {
		t.Fatal(err)
	}
	nodes := []NodeInfo{
		{Name: "model.layers.0.self_attn.q_proj", Ne: []int64{16, 3}},
		{Name: "model.layers.0.self_attn.k_proj", Ne: []int64{8, 3}},
		{Name: "model.layers.0.self_attn.v_proj", Ne: []int64{8, 3}},
	}
	mem := newNamesSource(nodes...)
	gguf := map[string][]float32{}
	for _, n := range mem.nodes {
		gguf[n.Name] = mem.data[n.Key]
		if !strings.HasSuffix(n.Name, "v_proj") {
			mem.data[n.Key] = hfPermute(mem.data[n.Key], 4)
		}
	}
	if _, _, err := WithNames(mem, hf, NameOptions{}); err == nil || !strings.Contains(err.Error(), "head size is unknown") {
		t.Fatalf("without the head size: %v", err)
	}
	if _, _, err := WithNames(mem, hf, NameOptions{HeadDim: 4, NHead: 2, NHeadKV: 2}); err == nil || !strings.Contains(err.Error(), "not 2 heads of 4") {
		t.Fatalf("with a wrong head count: %v", err)
	}
	hd, nh, nkv := HeadsFromNodes(llamaRef())
	if hd != 4 || nh != 4 || nkv != 2 {
		t.Fatalf("HeadsFromNodes: %d %d %d", hd, nh, nkv)
	}
	src, _, err := WithNames(mem, hf, NameOptions{HeadDim: hd, NHead: nh, NHeadKV: nkv, Ref: llamaRef()})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range src.Nodes() {
		ld, err := src.Load(n.Key)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ld.Data, gguf[nodes[i].Name]) {
			t.Errorf("%s (%s): %v, want GGUF order %v", n.Name, nodes[i].Name, ld.Data[:8], gguf[nodes[i].Name][:8])
		}
	}
	// qwen2 and qwen3 rope NEOX-style: no permutation, and qwen2's biased
	// projections are the second node of their name.
	q2, err := BuiltinNameMap(NamesHF, "qwen2")
	if err != nil {
		t.Fatal(err)
	}
	src, _, err = WithNames(newNamesSource(nodes[0]), q2, NameOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := src.Nodes()[0]; n.Name != "Qcur-0#2" || n.Op != "ADD" {
		t.Errorf("qwen2 q_proj: %s %s", n.Name, n.Op)
	}
	if _, err := BuiltinNameMap(NamesHF, ""); err == nil || !strings.Contains(err.Error(), "architecture is unknown") {
		t.Errorf("hf without arch: %v", err)
	}
	if _, err := BuiltinNameMap(NamesHF, "gemma"); err == nil || !strings.Contains(err.Error(), `"gemma"`) {
		t.Errorf("hf gemma: %v", err)
	}
}

func TestNameAdvice(t *testing.T) {
	llama := []string{"inp_embd", "norm-0", "attn_norm-0", "Qcur-0", "Qcur-0", "Kcur-0", "attn_out-0", "ffn_norm-0", "ffn_gate-0", "ffn_up-0", "ffn_out-0", "l_out-0", "norm", "result_norm", "result_output"}
	for _, tc := range []struct {
		what               string
		matched, unmatched []string
		want               []string // substrings
		none               bool
	}{
		{what: "hf", unmatched: []string{"model.embed_tokens", "model.layers.0.self_attn.q_proj", "model.norm", "lm_head"},
			want: []string{"only 0 of the 4 tensors of B", "model.layers.0.self_attn.q_proj → Qcur-0", "lm_head → result_output", "Hugging Face transformers' module names: try --names hf", "docs/names.md"}},
		{what: "meta", matched: []string{"norm"}, unmatched: []string{"tok_embeddings", "layers.0.attention_norm", "layers.0.feed_forward.w2", "output"},
			want: []string{"only 1 of the 5", "in Meta's reference llama code's convention norm is llama.cpp's result_norm, so that match pairs different tensors", "layers.0.feed_forward.w2 → ffn_out-0", "--names meta"}},
		{what: "unknown", unmatched: []string{"blk.0.query_out", "blk.0.mlp_down", "final_layernorm"},
			want: []string{"blk.0.query_out → Qcur-0", "blk.0.mlp_down → ffn_out-0", "final_layernorm → ", "--names FILE", "docs/names.md"}},
		{what: "many suggestions", unmatched: []string{"layers.0.q_proj", "layers.0.k_proj", "layers.0.v_proj", "layers.0.o_proj", "layers.0.up_proj", "layers.0.gate_proj", "layers.0.down_proj"},
			want: []string{"… (2 more unmatched)"}},
		{what: "most matched", matched: []string{"a", "b"}, unmatched: []string{"x", "y"}, none: true},
		{what: "all matched", matched: []string{"a"}, none: true},
	} {
		t.Run(tc.what, func(t *testing.T) {
			got := NameAdvice("B", tc.matched, tc.unmatched, llama)
			if tc.none {
				if got != "" {
					t.Errorf("advice %q, want none", got)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("advice %q lacks %q", got, w)
				}
			}
		})
	}
}

// TestSortNamesOccurrence: an .npy directory's "Qcur-0#2" is a layer-0
// tensor, listed after Qcur-0, not a layer-less one.
func TestSortNamesOccurrence(t *testing.T) {
	got := SortNames([]string{"result_norm", "Qcur-0#2", "l_out-0", "Qcur-0", "attn_norm-0", "inp_embd", "Qcur-1#2"})
	want := []string{"inp_embd", "attn_norm-0", "Qcur-0", "Qcur-0#2", "l_out-0", "Qcur-1#2", "result_norm"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("SortNames (-want +got):\n%s", d)
	}
}

// TestNamesDoc: the tables of docs/names.md ("Your engine's names") are
// the built-in maps.
func TestNamesDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/names.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "## Your engine's names")
	if !ok {
		t.Fatal("docs/names.md has no section \"Your engine's names\"")
	}
	tables := map[string][]string{} // map → "from = to (op)" rows
	for _, line := range strings.Split(sec, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		switch {
		case !strings.HasPrefix(line, "| `") && !slices.Contains(HFArchs, cells[0]):
			// Not a table row of names (headers, separators, prose).
		case len(cells) == 3:
			which := "hf/llama"
			if !strings.HasPrefix(cells[0], "model.") && cells[0] != "lm_head" {
				which = "meta/"
			}
			tables[which] = append(tables[which], cells[0]+" = "+cells[1]+" ("+cells[2]+")")
		case len(cells) == 4 && slices.Contains(HFArchs, cells[0]):
			tables["hf/"+cells[0]+"+"] = append(tables["hf/"+cells[0]+"+"], cells[1]+" = "+cells[2]+" ("+cells[3]+")")
		}
	}
	rows := func(m *NameMap) []string {
		var out []string
		for _, r := range m.rules {
			out = append(out, r.from+" = "+r.to+" ("+r.op+")")
		}
		return out
	}
	for _, tc := range []struct{ table, spec, arch string }{
		{"hf/llama", NamesHF, "llama"}, {"meta/", NamesMeta, ""}, {"hf/qwen2+", NamesHF, "qwen2"}, {"hf/qwen3+", NamesHF, "qwen3"}, {"hf/phi3+", NamesHF, "phi3"},
	} {
		m, err := BuiltinNameMap(tc.spec, tc.arch)
		if err != nil {
			t.Fatal(err)
		}
		got := rows(m)
		doc := tables[tc.table]
		if len(doc) == 0 {
			t.Errorf("docs: no table %s", tc.table)
		}
		if strings.HasSuffix(tc.table, "+") {
			// The arch table lists the rows that differ from llama's.
			for _, r := range doc {
				if !slices.Contains(got, r) {
					t.Errorf("docs %s row %q is not in the map %q", tc.table, r, got)
				}
			}
			continue
		}
		if d := cmp.Diff(doc, got); d != "" {
			t.Errorf("docs table %s vs map (-doc +map):\n%s", tc.table, d)
		}
	}
}

// TestNameMapCaptureExample: the capture kit's example map parses, and
// agrees with the built-in meta map wherever both map a name.
func TestNameMapCaptureExample(t *testing.T) {
	m, err := ReadNameMap("../../capture/python/examples/numpy_llama.names")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Map("layers.3.attention.q_rope"); got != "Qcur-3#2" {
		t.Errorf("q_rope → %q, want Qcur-3#2", got)
	}
	meta, _ := BuiltinNameMap(NamesMeta, "")
	for _, r := range meta.rules {
		name := strings.Replace(r.from, layerVar, "5", 1)
		want, _ := meta.Map(name)
		if got, ok := m.Map(name); ok && got != want {
			t.Errorf("%s: example map %q, built-in meta %q", name, got, want)
		}
	}
}

// FuzzNameAdvice: any engine name gets advice without panicking, and the
// advice says how many matched.
func FuzzNameAdvice(f *testing.F) {
	for _, s := range []string{"model.layers.0.self_attn.q_proj", "layers.12.feed_forward.w2", "blk.3.x", "", "#", "layers.99999999.q"} {
		f.Add(s)
	}
	llama := []string{"inp_embd", "norm-0", "Qcur-0", "Qcur-0#2", "l_out-0", "node_5", "Qcur-0 (reshaped)", "result_norm"}
	f.Fuzz(func(t *testing.T, e string) {
		if got := NameAdvice("B", nil, []string{e}, llama); !strings.HasPrefix(got, "names: only 0 of the 1 tensors of B") {
			t.Fatalf("%q: %q", e, got)
		}
	})
}
