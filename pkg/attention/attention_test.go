package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// memSource is an in-memory reference.Source.
type memSource struct {
	nodes []reference.NodeInfo
	data  map[string][]float32
	loads map[string]int
}

func (m *memSource) Describe() reference.Info    { return reference.Info{Path: "mem"} }
func (m *memSource) Nodes() []reference.NodeInfo { return m.nodes }
func (m *memSource) Load(key string) (*tensor.Tensor, error) {
	m.loads[key]++
	for _, n := range m.nodes {
		if n.Key == key {
			d, ok := m.data[key]
			if !ok {
				return nil, fmt.Errorf("%s: %w", key, reference.ErrNoData)
			}
			return &tensor.Tensor{Key: key, Name: n.Name, Op: n.Op, Ne: n.Ne, Data: slices.Clone(d)}, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", key, reference.ErrNotFound)
}

// dims of the test attention: head size d, T tokens, H query heads over
// Hkv KV heads, nkv cache cells.
const d, T, H, Hkv, nkv = 3, 4, 4, 2, 8

func randData(rng *rand.Rand, n int64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// faGraph is a flash-attention layer as llama.cpp's graph shows it: Q,
// K and V views, the mask, and the FLASH_ATTN_EXT node (named fa).
func faGraph(fa string, withMask bool) *memSource {
	rng := rand.New(rand.NewPCG(1, 2))
	m := &memSource{data: map[string][]float32{}, loads: map[string]int{}}
	add := func(name, op string, data []float32, ne ...int64) {
		n := reference.NodeInfo{Key: name, Name: name, Op: op, Ne: ne}
		if data != nil {
			n.Data = reference.FullData
			m.data[name] = data
		}
		m.nodes = append(m.nodes, n)
	}
	mask := make([]float32, nkv*T)
	for t := range T {
		for c := range nkv {
			if c > t {
				mask[t*nkv+c] = float32(math.Inf(-1))
			}
		}
	}
	if !withMask {
		mask = nil
	}
	add("attn_norm-0", "MUL", randData(rng, 12*T), 12, T)
	add("Qcur-0 (view) (permuted)", "PERMUTE", randData(rng, d*T*H), d, T, H)
	add("cache_k_l0 (view) (permuted)", "PERMUTE", randData(rng, d*nkv*Hkv), d, nkv, Hkv)
	add("cache_v_l0 (view) (permuted)", "PERMUTE", randData(rng, d*nkv*Hkv), d, nkv, Hkv)
	add(" (copy)", "CPY", mask, nkv, T)
	m.nodes = append(m.nodes, reference.NodeInfo{Key: fa, Name: fa, Op: "FLASH_ATTN_EXT", Ne: []int64{d, H, T}, Data: reference.FullData,
		Src: []string{"Qcur-0 (view) (permuted)", "cache_k_l0 (view) (permuted)", "cache_v_l0 (view) (permuted)", " (copy)"}})
	m.data[fa] = make([]float32, d*H*T)
	add("attn_out-0", "MUL_MAT", randData(rng, 12*T), 12, T)
	return m
}

// naive is the textbook attention, indexed by coordinates: scores
// s[h][t][c] = q(h, t)·k(h/2, c), softmax over c ≤ t of s/√d, output
// Σ_c p·v(h/2, c).
func naive(m *memSource) (kq, sm, kqv func(h, t, c int64) float64) {
	q, k, v := m.data["Qcur-0 (view) (permuted)"], m.data["cache_k_l0 (view) (permuted)"], m.data["cache_v_l0 (view) (permuted)"]
	at := func(x []float32, i0, i1, i2, n0, n1 int64) float64 { return float64(x[i0+n0*(i1+n1*i2)]) }
	score := func(h, t, c int64) float64 {
		s := 0.0
		for i := range int64(d) {
			s += at(q, i, t, h, d, T) * at(k, i, c, h/(H/Hkv), d, nkv)
		}
		return s
	}
	prob := func(h, t, c int64) float64 {
		if c > t {
			return 0
		}
		z := 0.0
		for j := range t + 1 {
			z += math.Exp(score(h, t, j) / math.Sqrt(d))
		}
		return math.Exp(score(h, t, c)/math.Sqrt(d)) / z
	}
	out := func(h, t, i int64) float64 {
		s := 0.0
		for c := range int64(nkv) {
			s += prob(h, t, c) * at(v, i, c, h/(H/Hkv), d, nkv)
		}
		return s
	}
	return score, prob, out
}

// TestDerive checks the derived nodes' values against the textbook
// computation, with the op's mask and with the causal fallback, and the
// node list: derived nodes just before their flash-attention node, with
// llama.cpp's names and shapes, noted as derived.
func TestDerive(t *testing.T) {
	for _, withMask := range []bool{true, false} {
		m := faGraph("__fattn__-0", withMask)
		src, warn := Derive(m, nil)
		if len(warn) > 0 {
			t.Fatal(warn)
		}
		var names []string
		for _, n := range src.Nodes() {
			names = append(names, fmt.Sprintf("%s %s %v", n.Key, n.Op, n.Ne))
		}
		want := []string{"attn_norm-0 MUL [12 4]", "Qcur-0 (view) (permuted) PERMUTE [3 4 4]", "cache_k_l0 (view) (permuted) PERMUTE [3 8 2]",
			"cache_v_l0 (view) (permuted) PERMUTE [3 8 2]", " (copy) CPY [8 4]",
			"kq-0 MUL_MAT [8 4 4 1]", "kq_soft_max-0 SOFT_MAX [8 4 4 1]", "kqv-0 MUL_MAT [3 4 4 1]",
			"__fattn__-0 FLASH_ATTN_EXT [3 4 4]", "attn_out-0 MUL_MAT [12 4]"}
		if !slices.Equal(names, want) {
			t.Errorf("nodes:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
		}
		ds := src.(*Source)
		if n := ds.DerivedNote("kq_soft_max-0"); !strings.Contains(n, "scale 1/√3") || withMask != strings.Contains(n, "the flash-attention op's mask  (copy)") {
			t.Errorf("mask %v: note %q", withMask, n)
		}
		if ds.DerivedNote("attn_out-0") != "" || ds.Unwrap() != reference.Source(m) {
			t.Error("the source's own nodes are not derived")
		}
		score, prob, out := naive(m)
		for _, c := range []struct {
			key string
			f   func(h, t, c int64) float64
			n0  int64
		}{{"kq-0", score, nkv}, {"kq_soft_max-0", prob, nkv}, {"kqv-0", out, d}} {
			x, err := src.Load(c.key)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for h := range int64(H) {
				for tk := range int64(T) {
					for i := range c.n0 {
						got := float64(x.Data[i+c.n0*(tk+T*h)])
						worst = max(worst, math.Abs(got-c.f(h, tk, i)))
					}
				}
			}
			if worst > 1e-6 {
				t.Errorf("mask %v: %s differs from the textbook attention by %g", withMask, c.key, worst)
			}
		}
	}
}

// TestDeriveGQA: query heads 0 and 1 read KV head 0, heads 2 and 3 KV
// head 1, as ggml broadcasts.
func TestDeriveGQA(t *testing.T) {
	m := faGraph("__fattn__-0", true)
	src, _ := Derive(m, nil)
	before, _ := src.Load("kq-0")
	k := m.data["cache_k_l0 (view) (permuted)"]
	for i := d * nkv; i < 2*d*nkv; i++ {
		k[i] += 1 // KV head 1
	}
	src, _ = Derive(m, nil)
	after, _ := src.Load("kq-0")
	for h := range int64(H) {
		a, b := before.Data[h*nkv*T:(h+1)*nkv*T], after.Data[h*nkv*T:(h+1)*nkv*T]
		if changed := !slices.Equal(a, b); changed != (h >= 2) {
			t.Errorf("query head %d: changed %v after KV head 1 changed", h, changed)
		}
	}
}

// TestDeriveSelection: want picks nodes; each layer is computed once for
// the nodes loaded together; an unnamed flash-attention node takes its Q's
// layer; a key already used gets a suffix; inputs without data give a
// warning and no derived node.
func TestDeriveSelection(t *testing.T) {
	m := faGraph("node_9", true)
	src, warn := Derive(m, func(name string) bool { return name != "kqv-0" })
	if len(warn) > 0 {
		t.Fatal(warn)
	}
	var keys []string
	for _, n := range src.Nodes() {
		if src.(*Source).DerivedNote(n.Key) != "" {
			keys = append(keys, n.Key)
		}
	}
	if !slices.Equal(keys, []string{"kq-0", "kq_soft_max-0"}) {
		t.Errorf("derived %v", keys)
	}
	for _, k := range []string{"kq-0", "kq_soft_max-0", "kq-0"} {
		if _, err := src.Load(k); err != nil {
			t.Fatal(err)
		}
	}
	// Two computations for three loads: kq_soft_max-0 was computed with
	// the first kq-0 and taken from there; the second kq-0 recomputes.
	if n := m.loads["Qcur-0 (view) (permuted)"]; n != 2 {
		t.Errorf("Q loaded %d times, want 2", n)
	}

	m = faGraph("__fattn__-0", true)
	m.nodes = append(m.nodes[:1], append([]reference.NodeInfo{{Key: "kq-0", Name: "kq-0", Op: "MUL_MAT", Ne: []int64{1}}}, m.nodes[1:]...)...)
	src, _ = Derive(m, func(name string) bool { return name == "kq-0" })
	if n := src.(*Source).DerivedNote("kq-0#derived2"); !strings.Contains(n, "unscaled and unmasked") {
		t.Errorf("a taken key: note %q", n)
	}

	m = faGraph("__fattn__-0", true)
	delete(m.data, "cache_k_l0 (view) (permuted)")
	for i := range m.nodes {
		if m.nodes[i].Key == "cache_k_l0 (view) (permuted)" {
			m.nodes[i].Data = reference.NoData
		}
	}
	src, warn = Derive(m, nil)
	if src != reference.Source(m) || len(warn) != 1 || !strings.Contains(warn[0], "mem: __fattn__-0 (FLASH_ATTN_EXT): attention nodes not derived: its K source cache_k_l0 (view) (permuted) has no data") {
		t.Errorf("no K data: %T, %q", src, warn)
	}
}

// TestDeriveSinks: a flash-attention op with attention sinks (a fifth
// source, gpt-oss) gets kq only, with a warning, since its softmax rows
// carry the sinks' share.
func TestDeriveSinks(t *testing.T) {
	m := faGraph("__fattn__-0", true)
	for i := range m.nodes {
		if m.nodes[i].Op == "FLASH_ATTN_EXT" {
			m.nodes[i].Src = append(m.nodes[i].Src, "blk.0.attn_sinks.weight")
		}
	}
	src, warn := Derive(m, nil)
	if len(warn) != 1 || !strings.Contains(warn[0], "attention sinks") {
		t.Errorf("warnings %q", warn)
	}
	var keys []string
	for _, n := range src.Nodes() {
		if src.(*Source).DerivedNote(n.Key) != "" {
			keys = append(keys, n.Key)
		}
	}
	if !slices.Equal(keys, []string{"kq-0"}) {
		t.Errorf("derived %v, want kq-0 only", keys)
	}
}
