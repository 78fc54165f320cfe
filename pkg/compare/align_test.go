package compare

import (
	"bufio"
	"github.com/layerdiff/layerdiff/internal/testshared"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func n(name, op string, ne ...int64) Node { return Node{Key: name, Name: name, Op: op, Ne: ne} }

// keyed gives repeated names unique keys the way NewTensorList does.
func keyed(nodes ...Node) []Node {
	seen := map[string]int{}
	for i := range nodes {
		k := nodes[i].Name
		if c := seen[k]; c > 0 {
			nodes[i].Key = k + "#" + strconv.Itoa(c)
		}
		seen[k]++
	}
	return nodes
}

// pairs lists "ref key -> other key (how)" for matched nodes and
// "ref key -> -" for unmatched ones.
func pairs(ref, other []Node, al *Alignment) []string {
	var out []string
	for _, m := range al.Matches {
		if m.Other < 0 {
			out = append(out, ref[m.Ref].Key+" -> -")
			continue
		}
		out = append(out, ref[m.Ref].Key+" -> "+other[m.Other].Key+" ("+m.How+")")
	}
	return out
}

func TestAlignAcrossVersions(t *testing.T) {
	// Reference: names of a 2026 llama.cpp (embd, Qcur-0 on three nodes,
	// unnamed flash attention, last layer reduced to the last token).
	ref := keyed(
		n("embd", "GET_ROWS", 64, 8),
		n("norm-0", "RMS_NORM", 64, 8),
		n("attn_norm-0", "MUL", 64, 8),
		n("Qcur-0", "MUL_MAT", 64, 8),
		n("Qcur-0", "RESHAPE", 16, 4, 8),
		n("Qcur-0", "ROPE", 16, 4, 8),
		n("Qcur-0 (view)", "VIEW", 16, 4, 8),
		n("Qcur-0 (view) (permuted)", "PERMUTE", 16, 8, 4),
		n("node_21", "FLASH_ATTN_EXT", 16, 4, 8),
		n("kqv_out-0", "RESHAPE", 64, 8),
		n("norm-0", "RMS_NORM", 64, 8),
		n("ffn_out-0", "MUL_MAT", 64, 8),
		n("l_out-0", "ADD", 64, 8),
		n("node_55", "GET_ROWS", 64, 1),
		n("ffn_inp-1", "ADD", 64, 1),
		n("result_output", "MUL_MAT", 10, 1),
	)
	// Other: names of the ollama v0.17.4 copy (inp_embd, "(reshaped)",
	// __fattn__-L), a residual still named ffn_out, every token kept.
	other := keyed(
		n("inp_embd", "GET_ROWS", 64, 8),
		n("norm-0", "RMS_NORM", 64, 8),
		n("attn_norm-0", "MUL", 64, 8),
		n("Qcur-0", "MUL_MAT", 64, 8),
		n("Qcur-0 (reshaped)", "RESHAPE", 16, 4, 8),
		n("Qcur-0", "ROPE", 16, 4, 8),
		n("__fattn__-0", "FLASH_ATTN_EXT", 16, 4, 8),
		n("kqv_out-0", "RESHAPE", 64, 8),
		n("norm-0", "RMS_NORM", 64, 8),
		n("ffn_out-0", "MUL_MAT", 64, 8),
		n("ffn_out-0", "ADD", 64, 8),
		n("ffn_inp-1", "ADD", 64, 8),
		n("result_output", "MUL_MAT", 10, 8),
		n("extra", "CPY", 3),
	)
	al := Align(ref, other, DefaultAliases)
	want := []string{
		"embd -> inp_embd (name+op)",
		"norm-0 -> norm-0 (name+op)",
		"attn_norm-0 -> attn_norm-0 (name+op)",
		"Qcur-0 -> Qcur-0 (name+op)",
		"Qcur-0#1 -> Qcur-0 (reshaped) (name+op)",
		"Qcur-0#2 -> Qcur-0#1 (name+op)",
		"Qcur-0 (view) -> Qcur-0#1 (view-of-source)",
		"Qcur-0 (view) (permuted) -> -",
		"node_21 -> __fattn__-0 (name+op)",
		"kqv_out-0 -> kqv_out-0 (name+op)",
		"norm-0#1 -> norm-0#1 (name+op)",
		"ffn_out-0 -> ffn_out-0 (name+op)",
		"l_out-0 -> ffn_out-0#1 (name+op)",
		"node_55 -> -",
		"ffn_inp-1 -> ffn_inp-1 (name+op)",
		"result_output -> result_output (name+op)",
	}
	if got := pairs(ref, other, al); !slices.Equal(got, want) {
		t.Errorf("alignment:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(al.UnmatchedOther) != 1 || other[al.UnmatchedOther[0]].Name != "extra" {
		t.Errorf("unmatched other = %v", al.UnmatchedOther)
	}
	if al.RefLayers[8] != 0 || al.RefLayers[13] != 0 || al.RefLayers[15] != -1 {
		t.Errorf("inferred layers: node_21 %d, node_55 %d, result_output %d", al.RefLayers[8], al.RefLayers[13], al.RefLayers[15])
	}
}

func TestAlignWithoutOps(t *testing.T) {
	ref := keyed(
		n("Qcur-0", "MUL_MAT", 64, 8),
		n("Qcur-0", "RESHAPE", 16, 4, 8),
		n("Qcur-0", "ROPE", 16, 4, 8),
		n("Kcur-0 (view)", "VIEW", 32, 8),
	)
	// A forward pass that names its outputs but records no ops.
	other := keyed(n("Qcur-0", "", 64, 8), n("Qcur-0", "", 16, 4, 8))
	al := Align(ref, other, DefaultAliases)
	want := []string{"Qcur-0 -> Qcur-0 (name)", "Qcur-0#1 -> Qcur-0 (view-of-source)", "Qcur-0#2 -> Qcur-0#1 (name)", "Kcur-0 (view) -> -"}
	if got := pairs(ref, other, al); !slices.Equal(got, want) {
		t.Errorf("alignment:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAlignFallbacks(t *testing.T) {
	ref := keyed(
		n("kqv_out-0", "RESHAPE", 64, 8), // FA on: a reshape of the FA output
		n("node_57", "MUL_MAT", 64, 8),   // qwen2 2026: unnamed wo projection
		n("attn_norm-2", "MUL", 64, 8),   // gives node_57's successor a layer
		n("node_60", "MUL_MAT", 64, 8),   // two candidates below: stays unmatched
		n("kq-3", "MUL_MAT", 256, 8, 4),  // shape without correspondence
		n("cache_k_l0 (view)", "SET_ROWS", 32, 256),
	)
	other := keyed(
		n("kqv_out-0", "CONT", 64, 8), // FA off: a cont of the permuted kqv
		n("attn_out-0", "MUL_MAT", 64, 8),
		n("attn_norm-2", "MUL", 64, 8),
		n("x-2", "MUL_MAT", 64, 8),
		n("y-2", "MUL_MAT", 64, 8),
		n("kq-3", "SOFT_MAX", 100, 6, 4), // (100, 8, 4) would be its first 100 cells
		n("cache_k_l0", "CPY", 32, 8),
	)
	al := Align(ref, other, DefaultAliases)
	want := []string{
		"kqv_out-0 -> kqv_out-0 (name-only)",
		"node_57 -> attn_out-0 (op+layer+shape)",
		"attn_norm-2 -> attn_norm-2 (name+op)",
		"node_60 -> -",
		"kq-3 -> -",
		"cache_k_l0 (view) -> cache_k_l0 (name-only)",
	}
	if got := pairs(ref, other, al); !slices.Equal(got, want) {
		t.Errorf("alignment:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPlanTransform(t *testing.T) {
	cases := []struct {
		name        string
		ref, other  Node
		tokens      int
		kind        string
		tokenCount  int
		tokenBase   int
		tokenStride int64
		refCount    int64
	}{
		{"same", n("a-0", "", 64, 8), n("a-0", "", 64, 8, 1, 1), 8, SameShape, 8, 0, 64, 512},
		{"flat", n("Kcur-0", "", 16, 2, 8), n("Kcur-0", "", 32, 8), 8, Flat, 8, 0, 32, 256},
		{"last row, ref trimmed", n("ffn_inp-1", "", 64), n("ffn_inp-1", "", 64, 8), 8, LastRows, 1, 7, 64, 64},
		{"last row, ref {n,1}", n("result_output", "", 10, 1), n("result_output", "", 10, 8), 8, LastRows, 1, 7, 10, 10},
		{"last two rows", n("x", "", 64, 2), n("x", "", 64, 8), 8, LastRows, 2, 6, 64, 128},
		{"last row, reshaped ref", n("Qcur-1", "", 16, 4, 1), n("Qcur-1", "", 16, 4, 8), 8, LastRows, 1, 7, 64, 64},
		{"kv cache", n("cache_k_l0 (view)", "", 32, 256), n("cache_k_l0", "", 32, 8), 8, FirstRows, 8, 0, 32, 256},
		{"gqa", n("Kcur-0", "", 16, 2, 8), n("Kcur-0", "", 16, 4, 8), 8, GQAHeads, 8, 0, 32, 256},
		{"gqa, flat other", n("Kcur-0", "", 16, 2, 8), n("Kcur-0", "", 64, 8), 8, GQAHeads, 8, 0, 32, 256},
		{"kq token axis", n("kq-0", "", 256, 8, 4), n("kq-0", "", 256, 8, 4), 8, SameShape, 8, 0, 256, 8192},
		{"unknown T: last rows from the other's shape", n("x", "", 64, 1), n("x", "", 64, 5), 0, LastRows, 1, 4, 64, 64},
		{"single token", n("x", "", 64), n("x", "", 64, 1), 1, SameShape, 1, 0, 64, 64},
	}
	for _, c := range cases {
		tr, err := PlanTransform(c.ref, c.other, c.tokens)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if tr.Kind != c.kind || tr.TokenCount != c.tokenCount || tr.TokenBase != c.tokenBase || tr.TokenStride != c.tokenStride || tr.RefCount != c.refCount {
			t.Errorf("%s: %+v, want kind %s tokens %d base %d stride %d count %d", c.name, tr, c.kind, c.tokenCount, c.tokenBase, c.tokenStride, c.refCount)
		}
	}
	for _, c := range [][2]Node{
		{n("x", "", 64, 8), n("x", "", 32, 8)},
		{n("x", "", 64, 9), n("x", "", 64, 8)},
		{n("Kcur-0", "", 16, 3, 8), n("Kcur-0", "", 16, 4, 8)},
	} {
		if tr, err := PlanTransform(c[0], c[1], 8); err == nil {
			t.Errorf("%v vs %v: planned %+v, want an error", c[0].Ne, c[1].Ne, tr)
		}
	}
}

func TestTransformOtherData(t *testing.T) {
	seq := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(i)
		}
		return s
	}
	// GQA: other {2, 4, 2} (head dim 2, 4 heads, 2 tokens) → ref {2, 2, 2}
	// takes heads 0 and 2 of each token.
	tr, err := PlanTransform(n("Kcur-0", "", 2, 2, 2), n("Kcur-0", "", 2, 4, 2), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tr.OtherData(seq(16), []int64{2, 4, 2}), []float32{0, 1, 4, 5, 8, 9, 12, 13}; !slices.Equal(got, want) {
		t.Errorf("gqa gather = %v, want %v", got, want)
	}
	tr, _ = PlanTransform(n("x", "", 3, 1), n("x", "", 3, 4), 4)
	if got, want := tr.OtherData(seq(12), []int64{3, 4}), []float32{9, 10, 11}; !slices.Equal(got, want) {
		t.Errorf("last rows = %v, want %v", got, want)
	}
	if got := tr.OtherData(seq(11), []int64{3, 4}); got != nil {
		t.Errorf("short data accepted: %v", got)
	}
}

// logHeader matches the node header of llama.cpp's eval-callback output,
// both the 2025 ("ggml_debug:") and the 2026 ("common_debug_cb_eval:")
// format: name = (type) OP(srcs...) = {ne}.
var logHeader = regexp.MustCompile(`^(?:ggml_debug|common_debug_cb_eval):\s+(.+?) = \((\w+)\)\s+(\w+)\(.*\) = \{([0-9, ]+)\}\s*$`)

// readLogNodes extracts node descriptions (not values) from a shared
// eval-callback log.
func readLogNodes(t *testing.T, path string) []Node {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("shared fixture not available: %v", err)
	}
	defer f.Close()
	var nodes []Node
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := logHeader.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var ne []int64
		for _, d := range strings.Split(m[4], ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(d), 10, 64)
			if err != nil {
				t.Fatalf("%s: bad shape %q", path, m[4])
			}
			ne = append(ne, v)
		}
		nodes = append(nodes, Node{Name: m[1], Op: m[3], Ne: ne})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		nodes[i].Key = nodes[i].Name
	}
	return keyed(nodes...)
}

// sharedDir finds /work/shared (a sibling "shared" of an ancestor).
func sharedDir(t *testing.T) string {
	t.Helper()
	return testshared.Dir(t)
}

// TestAlignRealLogNames aligns the node list of a real 2026 llama.cpp log
// with itself and with the same graph renamed the way the ollama v0.17.4
// copy names it.
func TestAlignRealLogNames(t *testing.T) {
	sd := sharedDir(t)
	ref := readLogNodes(t, filepath.Join(sd, "llamacpp", "evalcb-S-Q8_0.log"))
	old := readLogNodes(t, filepath.Join(sd, "llamacpp", "evalcb-old-S-Q8_0.log"))
	if len(ref) < 60 || len(ref) != len(old) {
		t.Fatalf("parsed %d and %d nodes", len(ref), len(old))
	}
	for i := range ref {
		if ref[i].Name != old[i].Name || ref[i].Op != old[i].Op {
			t.Fatalf("node %d differs between the two log formats: %+v vs %+v", i, ref[i], old[i])
		}
	}
	al := Align(ref, ref, DefaultAliases)
	for _, m := range al.Matches {
		if m.Other != m.Ref {
			t.Errorf("self-alignment: %s -> %d", ref[m.Ref].Key, m.Other)
		}
	}

	// The ollama-copy spelling of the same graph.
	var renamed []Node
	layer := -1
	for _, nd := range ref {
		nd := nd
		base, l := splitForTest(nd.Name)
		if l >= 0 {
			layer = l
		}
		switch {
		case nd.Name == "embd":
			nd.Name = "inp_embd"
		case nd.Op == "FLASH_ATTN_EXT":
			nd.Name = "__fattn__-" + strconv.Itoa(layer)
		case nd.Op == "RESHAPE" && (base == "Qcur" || base == "Kcur" || base == "Vcur"):
			nd.Name += " (reshaped)"
		}
		nd.Key = nd.Name
		renamed = append(renamed, nd)
	}
	renamed = keyed(renamed...)
	al = Align(ref, renamed, DefaultAliases)
	for _, m := range al.Matches {
		if m.Other != m.Ref {
			t.Errorf("against ollama names: %s -> %d (%s)", ref[m.Ref].Key, m.Other, m.How)
		}
	}
	if len(al.UnmatchedOther) != 0 {
		t.Errorf("unmatched: %v", al.UnmatchedOther)
	}
}

func splitForTest(name string) (string, int) {
	s := name
	if i := strings.IndexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '-'); i > 0 {
		if l, err := strconv.Atoi(s[i+1:]); err == nil {
			return s[:i], l
		}
	}
	return s, -1
}

// FuzzPlanTransform checks that any pair of shapes either has no plan or a
// plan whose OtherData yields exactly the compared region, without panics.
func FuzzPlanTransform(f *testing.F) {
	f.Add(int64(16), int64(2), int64(8), int64(16), int64(4), int64(8), 8, "Kcur-0")
	f.Add(int64(64), int64(1), int64(1), int64(64), int64(8), int64(1), 8, "ffn_inp-1")
	f.Add(int64(32), int64(256), int64(1), int64(32), int64(8), int64(1), 8, "cache_k_l0")
	f.Fuzz(func(t *testing.T, r0, r1, r2, o0, o1, o2 int64, tokens int, name string) {
		for _, v := range []int64{r0, r1, r2, o0, o1, o2} {
			if v < 0 || v > 64 {
				return
			}
		}
		if tokens < 0 || tokens > 64 {
			return
		}
		ref, other := n(name, "", r0, r1, r2), n(name, "", o0, o1, o2)
		tr, err := PlanTransform(ref, other, tokens)
		if err != nil {
			return
		}
		if tr.RefCount > r0*r1*r2 {
			t.Fatalf("%+v compares more than the reference has", tr)
		}
		data := make([]float32, o0*o1*o2)
		got := tr.OtherData(data, other.Ne)
		if int64(len(got)) != tr.RefCount {
			t.Fatalf("%+v: OtherData gave %d values, want %d", tr, len(got), tr.RefCount)
		}
		if tr.TokenCount > 0 && tr.TokenStride <= 0 {
			t.Fatalf("%+v: token count without stride", tr)
		}
	})
}

// TestPlanSwapAxes builds llama.cpp's V cache both ways — untransposed
// (flash attention on) and transposed (off, v_trans) — from one matrix
// v[cell][e] and checks that every node pair llama.cpp dumps maps element
// for element, in both directions, and that look-alike pairs do not.
func TestPlanSwapAxes(t *testing.T) {
	const C, H, D = 6, 2, 3 // cells, KV heads, head dim
	E := H * D
	val := func(cell, e int64) float32 { return float32(100*cell + e) }
	// Flash attention on: {E, C}, e fastest. Off: transposed, cell fastest.
	on := make([]float32, 0, C*E)
	off := make([]float32, C*E)
	for c := int64(0); c < C; c++ {
		for e := int64(0); e < int64(E); e++ {
			on = append(on, val(c, e))
			off[e*C+c] = val(c, e)
		}
	}
	// The attention views, in their logical order (a dump gathers a view
	// through its strides): on {D, H, C} is the order of {E, C}; off
	// {C, H, D}, cell fastest, then head, then head dimension. The
	// permuted views: on {D, C, H}, off {C, D, H}.
	viewOff := make([]float32, 0, C*E)
	for d := int64(0); d < D; d++ {
		for h := int64(0); h < H; h++ {
			for c := int64(0); c < C; c++ {
				viewOff = append(viewOff, val(c, h*D+d))
			}
		}
	}
	permOn := make([]float32, 0, C*E)
	permOff := make([]float32, 0, C*E)
	for h := int64(0); h < H; h++ {
		for c := int64(0); c < C; c++ {
			for d := int64(0); d < D; d++ {
				permOn = append(permOn, val(c, h*D+d))
			}
		}
		for d := int64(0); d < D; d++ {
			for c := int64(0); c < C; c++ {
				permOff = append(permOff, val(c, h*D+d))
			}
		}
	}
	pairs := []struct {
		name        string
		onN, offN   Node
		onD, offD   []float32
		onNe, offNe []int64
	}{
		{"set_rows", n("cache_v_l0 (view)", "SET_ROWS", int64(E), C), n("cache_v_l0 (reshaped) (view)", "SET_ROWS", 1, C*int64(E)), on, off, []int64{int64(E), C}, []int64{1, C * int64(E)}},
		{"view", n("cache_v_l0 (view)", "VIEW", D, H, C), n("cache_v_l0 (view)", "VIEW", C, H, D), on, viewOff, []int64{D, H, C}, []int64{C, H, D}},
		{"permuted", n("cache_v_l0 (view) (permuted)", "PERMUTE", D, C, H), n("cache_v_l0 (view) (permuted)", "PERMUTE", C, D, H), permOn, permOff, []int64{D, C, H}, []int64{C, D, H}},
	}
	for _, p := range pairs {
		for _, dir := range []struct {
			ref, other         Node
			refData, otherData []float32
			otherNe            []int64
		}{
			{p.onN, p.offN, p.onD, p.offD, p.offNe},
			{p.offN, p.onN, p.offD, p.onD, p.onNe},
		} {
			tr, err := PlanTransform(dir.ref, dir.other, 0)
			if err != nil || tr.Kind != SwapAxes {
				t.Fatalf("%s: %s ↔ %s: kind %q, err %v", p.name, fmtShape(dir.ref.Ne), fmtShape(dir.other.Ne), tr.Kind, err)
			}
			if got := tr.OtherData(dir.otherData, dir.otherNe); !slices.Equal(got, dir.refData) {
				t.Errorf("%s: %s ↔ %s: mapped %v, want %v", p.name, fmtShape(dir.ref.Ne), fmtShape(dir.other.Ne), got, dir.refData)
			}
		}
	}
	// Not V caches, another layer, or not one exchange: no swap.
	for _, c := range []struct{ ref, other Node }{
		{n("cache_k_l0 (view)", "", 6, 4), n("cache_k_l0 (view)", "", 4, 6)},
		{n("kqv-0", "", 6, 4), n("kqv-0", "", 4, 6)},
		{n("cache_v_l0 (view)", "", 6, 4), n("cache_v_l1 (view)", "", 4, 6)},
		{n("cache_v_l0 (view)", "", 2, 3, 4), n("cache_v_l0 (view)", "", 4, 2, 3)}, // a rotation, not a swap
	} {
		tr, err := PlanTransform(c.ref, c.other, 0)
		if err == nil && tr.Kind == SwapAxes {
			t.Errorf("%s %s ↔ %s %s: swapped axes", c.ref.Name, fmtShape(c.ref.Ne), c.other.Name, fmtShape(c.other.Ne))
		}
	}
}
