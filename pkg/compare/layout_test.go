package compare

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// coords4 calls f with every coordinate of a shape (up to 4 axes, padded
// with 1s) in ggml order, and its flat index.
func coords4(ne []int64, f func(i int64, c [4]int64)) {
	var p [4]int64
	for k := range p {
		p[k] = 1
	}
	copy(p[:], ne)
	i := int64(0)
	for c3 := range p[3] {
		for c2 := range p[2] {
			for c1 := range p[1] {
				for c0 := range p[0] {
					f(i, [4]int64{c0, c1, c2, c3})
					i++
				}
			}
		}
	}
}

// engineCopy builds the other side's tensor from the reference's: element
// at flat index at(c) of a tensor of shape ne is the reference's element at
// coordinate c; elements no reference coordinate reaches are fill.
func engineCopy(ref *tensor.Tensor, name string, ne []int64, fill float32, at func(c [4]int64) (int64, bool)) *tensor.Tensor {
	d := make([]float32, tensor.Numel(ne))
	for i := range d {
		d[i] = fill
	}
	coords4(ref.Ne, func(i int64, c [4]int64) {
		if j, ok := at(c); ok {
			d[j] = ref.Data[i]
		}
	})
	return &tensor.Tensor{Key: name, Name: name, Ne: ne, Data: d}
}

// TestEngineLayouts compares llama.cpp-shaped tensors with an engine's
// numpy layouts of the same values: each must match, be compared under the
// right shape rule with its note, and agree bit for bit on exactly the
// compared elements.
func TestEngineLayouts(t *testing.T) {
	const T, hidden, d, heads, nkv = 5, 12, 4, 3, 16
	rng := rand.New(rand.NewPCG(3, 4))
	ninf := float32(math.Inf(-1))
	cases := []struct {
		name   string
		ref    *tensor.Tensor
		ne     []int64 // the engine's ne (reversed numpy shape)
		fill   float32
		at     func(c [4]int64) (int64, bool)
		mask   func(o *tensor.Tensor) // changes the engine's tensor after copying
		kind   string
		note   string // in the row's notes ("" none)
		n      int64  // compared elements
		tokens int
	}{
		{"(hidden, tokens) numpy", randTensor(rng, "attn_norm-0", "MUL", hidden, T), []int64{T, hidden}, 0,
			func(c [4]int64) (int64, bool) { return c[1] + T*c[0], true }, nil,
			Permute, "numpy shape (12, 5), against {12, 5}): compared transposed", hidden * T, T},
		{"(1, tokens, hidden) numpy", randTensor(rng, "ffn_out-0", "MUL_MAT", hidden, T), []int64{hidden, T, 1}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + hidden*c[1], true }, nil,
			SameShape, "", hidden * T, T},
		{"(1, hidden, tokens) numpy", randTensor(rng, "l_out-0", "ADD", hidden, T), []int64{T, hidden, 1}, 0,
			func(c [4]int64) (int64, bool) { return c[1] + T*c[0], true }, nil,
			Permute, "compared transposed", hidden * T, T},
		{"ROPE'd Qcur (heads, T, d)", randTensor(rng, "Qcur-0", "ROPE", d, heads, T), []int64{d, T, heads}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + d*c[2] + d*T*c[1], true }, nil,
			Permute, "numpy shape (3, 5, 4), against {4, 3, 5}): compared axes permuted", d * heads * T, T},
		{"(1, heads, T, d)", randTensor(rng, "Kcur-0", "ROPE", d, heads, T), []int64{d, T, heads, 1}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + d*c[2] + d*T*c[1], true }, nil,
			Permute, "axes permuted", d * heads * T, T},
		{"Qcur {d·heads, T} against (heads, T, d)", randTensor(rng, "Qcur-0", "MUL_MAT", d*heads, T), []int64{d, T, heads}, 0,
			// Reference element (i, t) is head i/d, dim i%d.
			func(c [4]int64) (int64, bool) { return c[0]%d + d*c[1] + d*T*(c[0]/d), true }, nil,
			Permute, "axes permuted", d * heads * T, T},
		{"kqv (heads, T, d)", randTensor(rng, "kqv-0", "MUL_MAT", d, T, heads), []int64{d, T, heads}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + d*c[1] + d*T*c[2], true }, nil,
			SameShape, "", d * T * heads, T},
		{"kqv (T, heads, d)", randTensor(rng, "kqv-0", "MUL_MAT", d, T, heads), []int64{d, heads, T}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + d*c[2] + d*heads*c[1], true }, nil,
			Permute, "axes permuted", d * T * heads, T},
		{"hidden == T", randTensor(rng, "attn_norm-0", "MUL", T, T), []int64{T, T}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + T*c[1], true }, nil,
			SameShape, "cannot be told from the shape; compared as is", T * T, T},
		{"repeated sizes", randTensor(rng, "Vcur-0", "RESHAPE", d, d, T), []int64{d, T, d}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + d*c[2] + d*T*c[1], false }, nil,
			Flat, "sizes repeat, so which one cannot be told: compared as is", d * d * T, T},
		{"kq (heads, T, T)", randTensor(rng, "kq-0", "MUL_MAT", nkv, T, heads), []int64{T, T, heads}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + T*c[1] + T*T*c[2], c[0] < T }, nil,
			FirstCells, "attention over 5 cells against the reference's 16 KV cells: compared the first 5 of each row", T * T * heads, T},
		{"kq_soft_max (heads, T, T)", randTensor(rng, "kq_soft_max-0", "SOFT_MAX", nkv, T, heads), []int64{T, T, heads}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + T*c[1] + T*T*c[2], c[0] < T }, nil,
			FirstCells, "compared the first 5 of each row", T * T * heads, T},
		{"kq (heads, T, T) masked", randTensor(rng, "kq-0", "MUL_MAT", nkv, T, heads), []int64{T, T, heads}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + T*c[1] + T*T*c[2], c[0] < T },
			func(o *tensor.Tensor) {
				coords4(o.Ne, func(i int64, c [4]int64) {
					if c[0] > c[1] {
						o.Data[i] = ninf
					}
				})
			},
			FirstCells, "masks kq above the diagonal (30 elements −Inf or ≤ −1000", T * (T + 1) / 2 * heads, T},
		{"kq over n_kv cells, masked with -1e9", randTensor(rng, "kq-0", "MUL_MAT", nkv, T, heads), []int64{nkv, T, heads}, 0,
			func(c [4]int64) (int64, bool) { return c[0] + nkv*c[1] + nkv*T*c[2], true },
			func(o *tensor.Tensor) {
				coords4(o.Ne, func(i int64, c [4]int64) {
					if c[0] > c[1] {
						o.Data[i] = -1e9
					}
				})
			},
			SameShape, "compared the causal part only", T * (T + 1) / 2 * heads, T},
	}
	for _, c := range cases {
		o := engineCopy(c.ref, c.ref.Name, c.ne, c.fill, func(x [4]int64) (int64, bool) {
			j, ok := c.at(x)
			return j, ok || c.kind == Flat
		})
		if c.kind == Flat {
			copy(o.Data, c.ref.Data) // as is: the same flat data
		}
		if c.mask != nil {
			c.mask(o)
		}
		o.Name, o.Key = c.ref.Name, c.ref.Name
		// The engine's side has no ops, like a directory of .npy files.
		rep, err := Compare(NewTensorList([]*tensor.Tensor{c.ref}), NewTensorList([]*tensor.Tensor{o}), Options{Tokens: T, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		row := rep.Tensors[0]
		notes := strings.Join(row.Notes, "\n")
		if row.Status != Pass || row.Transform != c.kind || row.Metrics.N != c.n || row.Metrics.BitIdentical != c.n || row.Tokens != c.tokens {
			t.Errorf("%s: %s %s, n %v, want pass %s n %d tokens %d (notes %q, reasons %q)", c.name, row.Status, row.Transform, row.Metrics, c.kind, c.n, c.tokens, notes, row.Reasons)
			continue
		}
		if c.note == "" && notes != "" || !strings.Contains(notes, c.note) {
			t.Errorf("%s: notes %q, want %q", c.name, notes, c.note)
		}
		// A change to one compared element of the engine's copy is seen.
		o.Data[0] += 1
		rep, _ = Compare(NewTensorList([]*tensor.Tensor{c.ref}), NewTensorList([]*tensor.Tensor{o}), Options{Tokens: T, Workers: 1})
		if m := rep.Tensors[0].Metrics; m == nil || m.BitIdentical != c.n-1 {
			t.Errorf("%s: a changed element is not seen: %+v", c.name, m)
		}
	}
}

// TestLayoutRunsCoordinates: with runs (first-cells, a causal kq), per-token
// counts and the worst element's index and coordinates are the
// reference's.
func TestLayoutRunsCoordinates(t *testing.T) {
	const T, nkv, heads = 4, 8, 2
	rng := rand.New(rand.NewPCG(5, 6))
	ref := randTensor(rng, "kq-1", "MUL_MAT", nkv, T, heads)
	o := engineCopy(ref, "kq-1", []int64{T, T, heads}, 0, func(c [4]int64) (int64, bool) { return c[0] + T*c[1] + T*T*c[2], c[0] < T })
	// Cell 2 of query 3, head 1 is off; the masked cells are −Inf.
	coords4(o.Ne, func(i int64, c [4]int64) {
		if c[0] > c[1] {
			o.Data[i] = float32(math.Inf(-1))
		}
		if c == [4]int64{2, 3, 1, 0} {
			o.Data[i] += 10
		}
	})
	rep, err := Compare(NewTensorList([]*tensor.Tensor{ref}), NewTensorList([]*tensor.Tensor{o}), Options{Tokens: T, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	row := rep.Tensors[0]
	if row.Status != Fail || row.FirstFailToken != 3 {
		t.Fatalf("status %s first failing token %d, want fail at 3 (%q)", row.Status, row.FirstFailToken, row.Reasons)
	}
	wantIdx := int64(2 + nkv*3 + nkv*T*1)
	if at := row.Metrics.MaxAbsAt; at == nil || at.Index != wantIdx || !slices.Equal(at.Coord, []int64{2, 3, 1}) {
		t.Errorf("max abs at %+v, want index %d coord [2 3 1]", at, wantIdx)
	}
	var ns []int64
	for _, ts := range row.PerToken {
		ns = append(ns, ts.N)
	}
	if !slices.Equal(ns, []int64{2, 4, 6, 8}) { // (q+1) cells × 2 heads
		t.Errorf("per-token counts %v", ns)
	}
}

// TestEmbedInvertsOtherData: for every shape rule, Embed writes the other
// side's values where OtherData pairs them (RefData of the result is
// OtherData), leaves the rest of the buffer alone, and refuses wrong
// lengths.
func TestEmbedInvertsOtherData(t *testing.T) {
	cases := []struct {
		ref, other Node
		tokens     int
		kind       string
	}{
		{n("a-0", "", 8, 5), n("a-0", "", 8, 5, 1), 5, SameShape},
		{n("Kcur-0", "", 4, 2, 5), n("Kcur-0", "", 8, 5), 5, Flat},
		{n("x", "", 8, 2), n("x", "", 8, 5), 5, LastRows},
		{n("cache_k_l0 (view)", "", 8, 16), n("cache_k_l0", "", 8, 5), 5, FirstRows},
		{n("Kcur-0", "", 4, 2, 5), n("Kcur-0", "", 4, 6, 5), 5, GQAHeads},
		{n("cache_v_l0 (view)", "", 16, 2, 4), n("cache_v_l0 (view)", "", 4, 2, 16), 5, SwapAxes},
		{n("attn_norm-0", "", 8, 5), n("attn_norm-0", "", 5, 8), 5, Permute},
		{n("Qcur-0", "", 12, 5), n("Qcur-0", "", 4, 5, 3, 1), 5, Permute},
		{n("kq-0", "", 16, 5, 3), n("kq-0", "", 5, 5, 3), 5, FirstCells},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		tr, err := PlanTransform(c.ref, c.other, c.tokens)
		if err != nil || tr.Kind != c.kind {
			t.Errorf("%v vs %v: %s %v, want %s", c.ref.Ne, c.other.Ne, tr.Kind, err, c.kind)
			continue
		}
		x := make([]float32, tensor.Numel(c.other.Ne))
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		const sentinel = 12345
		into := make([]float32, tensor.Numel(c.ref.Ne))
		for i := range into {
			into[i] = sentinel
		}
		if !tr.Embed(x, c.other.Ne, into) {
			t.Errorf("%s: Embed refused", c.kind)
			continue
		}
		if got, want := tr.RefData(into), tr.OtherData(x, c.other.Ne); !slices.Equal(got, want) {
			t.Errorf("%s: RefData(Embed(x)) = %v, OtherData(x) = %v", c.kind, got, want)
		}
		left := 0
		for _, v := range into {
			if v == sentinel {
				left++
			}
		}
		if want := len(into) - int(tr.RefCount); left != want {
			t.Errorf("%s: %d elements left as they were, want %d", c.kind, left, want)
		}
		if tr.Embed(x[1:], c.other.Ne, into) || tr.Embed(x, c.other.Ne, into[1:]) {
			t.Errorf("%s: Embed accepted wrong lengths", c.kind)
		}
	}
}
