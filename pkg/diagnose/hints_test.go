package diagnose

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/compare/render"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

func hintRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x68696e7473)) }

func hintVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func hintF32(a []float64) []float32 {
	out := make([]float32, len(a))
	for i, v := range a {
		out[i] = float32(v)
	}
	return out
}

func hintMap(a []float32, f func(float32) float32) []float32 {
	out := make([]float32, len(a))
	for i, v := range a {
		out[i] = f(v)
	}
	return out
}

func hintKinds(hs []compare.Hint) []string {
	var k []string
	for _, h := range hs {
		k = append(k, h.Kind)
	}
	return k
}

func findHint(hs []compare.Hint, kind string) *compare.Hint {
	for i := range hs {
		if hs[i].Kind == kind {
			return &hs[i]
		}
	}
	return nil
}

func TestHintGeneric(t *testing.T) {
	r := hintRand(1)
	ne := []int64{16, 6, 4} // rows of 16, T = 6 along ne[1]
	ref := hintVec(r, 16*6*4)
	noise := hintVec(r, len(ref))
	shifted := func(delta int) []float32 {
		// ours at token t = reference at t+delta (t+delta clamped to itself)
		out := slices.Clone(ref)
		for o := 0; o < 4; o++ {
			for tt := 0; tt < 6; tt++ {
				s := tt + delta
				if s < 0 || s >= 6 {
					continue
				}
				copy(out[(o*6+tt)*16:(o*6+tt+1)*16], ref[(o*6+s)*16:(o*6+s+1)*16])
			}
		}
		return out
	}
	f16ref := hintMap(ref, roundF16)
	inject := func(kind string, ne []int64) []float32 { return planted(ref, kind, ne) }
	tests := []struct {
		name  string
		node  string
		ref   []float32
		ours  []float32
		want  string // kind, "" for none
		value float64
		text  string
	}{
		{name: "sign flip", ref: ref, ours: hintMap(ref, func(v float32) float32 { return -v }), want: HintSignFlip, value: -1, text: "sign flip"},
		{name: "scale 2", ref: ref, ours: hintMap(ref, func(v float32) float32 { return 2 * v }), want: HintScale, value: 2, text: "constant factor 2"},
		{name: "scale 1.01", ref: ref, ours: hintMap(ref, func(v float32) float32 { return float32(1.01 * float64(v)) }), want: HintScale, value: 1.01, text: "constant factor 1.01"},
		{name: "swapped halves", ref: ref, ours: inject("swap", ne), want: HintSwappedHalves},
		{name: "transposed", ref: ref, ours: inject("transpose", ne), want: HintTransposed, text: "{16, 6} matrices transposed"},
		{name: "transposed other reading", ref: ref, ours: inject("transpose", []int64{6, 16, 4}), want: HintTransposed, text: "{6, 16} matrices transposed"},
		{name: "permuted", ref: ref, ours: hintPermute12(ref, 16, 6, 4), want: HintPermuted},
		{name: "token t-1", ref: ref, ours: shifted(-1), want: HintPositionShift, value: -1, text: "token t−1"},
		{name: "token t+1", ref: ref, ours: shifted(1), want: HintPositionShift, value: 1, text: "token t+1"},
		{name: "reference f16", ref: f16ref, ours: ref, want: HintF16Rounding, value: 1},
		{name: "ours f16", ref: ref, ours: f16ref, want: HintF16Rounding, value: -1},
		{name: "kv cache f16", node: "cache_k_l0 (view)", ref: f16ref, ours: ref, want: HintF16Rounding, text: "--kv-type f16"},
		// negative cases: a difference none of the hypotheses explains
		{name: "noise", ref: ref, ours: slices.Concat(hintMap(ref[:len(ref)/2], func(v float32) float32 { return v }), noise[len(ref)/2:])},
		{name: "small noise", ref: ref, ours: func() []float32 {
			out := slices.Clone(ref)
			for i := range out {
				out[i] += 1e-3 * noise[i]
			}
			return out
		}()},
		{name: "scale plus noise", ref: ref, ours: func() []float32 {
			out := slices.Clone(ref)
			for i := range out {
				out[i] = 2*out[i] + 0.1*noise[i]
			}
			return out
		}()},
		{name: "identical", ref: ref, ours: slices.Clone(ref)},
		{name: "f16 with noise", ref: f16ref, ours: func() []float32 {
			out := slices.Clone(ref)
			for i := range out {
				out[i] += 1e-2 * noise[i]
			}
			return out
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.node
			if name == "" {
				name = "ffn_out-0"
			}
			hs := Hints(Input{Name: name, Op: "ADD", Ne: ne, Ref: tt.ref, Isolated: tt.ours, T: 6})
			if tt.want == "" {
				if len(hs) != 0 {
					t.Fatalf("hints %q, want none: %+v", hintKinds(hs), hs)
				}
				return
			}
			h := findHint(hs, tt.want)
			if h == nil {
				t.Fatalf("hints %q, want %s", hintKinds(hs), tt.want)
			}
			if tt.value != 0 && math.Abs(float64(h.Value)-tt.value) > 1e-6*math.Abs(tt.value) {
				t.Errorf("value %v, want %v", h.Value, tt.value)
			}
			if !strings.Contains(h.Text, tt.text) {
				t.Errorf("text %q does not say %q", h.Text, tt.text)
			}
			if !(float64(h.NMSE)*explainRatio <= float64(h.Baseline)) {
				t.Errorf("nmse %v, baseline %v", h.NMSE, h.Baseline)
			}
		})
	}
}

func TestHintBadInput(t *testing.T) {
	ref := []float32{1, 2, 3, 4}
	for _, in := range []Input{
		{Name: "a", Ne: []int64{4}, Ref: nil},
		{Name: "a", Ne: []int64{3}, Ref: ref, Isolated: []float32{-1, -2, -3, -4}},
		{Name: "a", Ne: []int64{2, -2}, Ref: ref},
		{Name: "a", Ne: []int64{1, 1, 1, 1, 4}, Ref: ref},
		{Name: "a", Ne: []int64{4}, Ref: ref, Isolated: []float32{1, 2}},
		{Name: "a", Op: "ROPE", Ne: []int64{4}, Ref: ref, Isolated: ref, Hparams: &forward.Hparams{NRot: 8}, Inputs: []*tensor.Tensor{{Data: ref}}},
		{Name: "a", Op: "RMS_NORM", Ne: []int64{4}, Ref: ref, Inputs: []*tensor.Tensor{{Data: []float32{1}}}},
		{Name: "a", Op: "MUL_MAT", Ne: []int64{4}, Ref: ref, InputNames: []string{"w", "x"}, Inputs: []*tensor.Tensor{nil, {Data: ref}}, Weights: hintWeights{}},
		{Name: "inp_embd", Op: "GET_ROWS", Ne: []int64{4}, Ref: ref, Tokens: []int32{99}, Weights: hintWeights{"token_embd.weight": {ne: []int64{4, 2}, data: make([]float32, 8)}}},
		{Name: "a", Ne: []int64{4}, Ref: []float32{0, 0, 0, 0}, Isolated: ref},
		{Name: "a", Ne: []int64{4}, Ref: []float32{float32(math.NaN()), 1, 2, 3}, Isolated: []float32{float32(math.Inf(1)), 1, 2, 3}},
	} {
		if hs := Hints(in); len(hs) != 0 {
			t.Errorf("%+v: hints %+v", in, hs)
		}
	}
	// NaN and Inf pairs are ignored: the rest is a sign flip
	hs := Hints(Input{Name: "a", Ne: []int64{4}, Ref: []float32{float32(math.NaN()), 1, 2, 3}, Isolated: []float32{float32(math.Inf(1)), -1, -2, -3}})
	if findHint(hs, HintSignFlip) == nil {
		t.Errorf("hints %+v", hs)
	}
}

func TestNMSEOf(t *testing.T) {
	inf := math.Inf(1)
	for _, tt := range []struct {
		a, b []float32
		want float64
	}{
		{[]float32{1, 2}, []float32{1, 2}, 0},
		{[]float32{0, 0}, []float32{0, 0}, 0},
		{[]float32{0, 0}, []float32{1, 0}, inf},
		{[]float32{1, 1}, []float32{2, 1}, 0.5},
		{[]float32{1, float32(math.NaN())}, []float32{2, 5}, 1},
	} {
		if got := nmseOf(tt.a, tt.b); got != tt.want {
			t.Errorf("nmse(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if got := nmseOf([]float32{1}, []float32{1, 2}); !math.IsNaN(got) {
		t.Errorf("length mismatch: %v", got)
	}
	if got := nmseOf([]float32{float32(math.NaN())}, []float32{1}); !math.IsNaN(got) {
		t.Errorf("no finite pair: %v", got)
	}
}

func TestFnum(t *testing.T) {
	for _, tt := range []struct {
		x    float64
		d    int
		want string
	}{
		{20000.3, 5, "20000"},
		{500000, 5, "500000"},
		{1e-5, 3, "1e-05"},
		{1.23e-7, 3, "1.23e-07"},
		{-1, 6, "-1"},
		{1.01000003, 6, "1.01"},
		{math.Inf(1), 3, "+Inf"},
	} {
		if got := fnum(tt.x, tt.d); got != tt.want {
			t.Errorf("fnum(%v, %d) = %q, want %q", tt.x, tt.d, got, tt.want)
		}
	}
}

// hintRopeInput is a synthetic {head_dim, heads, T} ROPE input.
func hintRopeInput(seed uint64, hd, heads, T int) ([]float32, []int64) {
	return hintVec(hintRand(seed), hd*heads*T), []int64{int64(hd), int64(heads), int64(T)}
}

func TestHintRope(t *testing.T) {
	const hd, heads, T = 64, 4, 12
	x, ne := hintRopeInput(2, hd, heads, T)
	ne4 := ne4(ne)
	llama := &forward.Hparams{Arch: forward.ArchLlama, NRot: hd, RopeType: forward.RopeNorm, RopeBase: 10000, RopeScale: 1, AttnFactor: 1}
	ff := make([]float32, hd/2)
	for i := range ff {
		ff[i] = 1 + float32(i)/4
	}
	llama3 := *llama
	llama3.RopeFreqs = ff
	rot := func(mode int, base, scale float64, off int, ff []float32) []float32 {
		return hintF32(ropePredict(x, ne4, hd, 1, ropeHyp{mode: mode, base: base, scale: scale, offset: off, ff: ff}))
	}
	norm := rot(forward.RopeNorm, 10000, 1, 0, nil)
	type want struct {
		kind        string
		value, ours float64
		tol         float64 // relative
		text        string
	}
	tests := []struct {
		name      string
		hp        *forward.Hparams
		ref, ours []float32
		want      []want
	}{
		{name: "NEOX reference, NORM ours", hp: llama, ref: rot(forward.RopeNeox, 10000, 1, 0, nil), ours: norm,
			want: []want{{kind: HintRopeMode, value: forward.RopeNeox, ours: forward.RopeNorm, text: "the reference's output matches NEOX rotation (pairs i, i+n/2) and layerdiff's matches NORM rotation (pairs 2i, 2i+1)"}}},
		{name: "NORM reference, NEOX ours", hp: llama, ref: norm, ours: rot(forward.RopeNeox, 10000, 1, 0, nil),
			want: []want{{kind: HintRopeMode, value: forward.RopeNorm, ours: forward.RopeNeox}}},
		{name: "base 20000 reference", hp: llama, ref: rot(forward.RopeNorm, 20000, 1, 0, nil), ours: norm,
			want: []want{{kind: HintRopeBase, value: 20000, ours: 10000, tol: 1e-3, text: "fit base 20000 and layerdiff's fit 10000"}}},
		{name: "base 500000 reference", hp: llama, ref: rot(forward.RopeNorm, 500000, 1, 0, nil), ours: norm,
			want: []want{{kind: HintRopeBase, value: 500000, ours: 10000, tol: 1e-3}}},
		{name: "base 20000 ours", hp: llama, ref: norm, ours: rot(forward.RopeNorm, 20000, 1, 0, nil),
			want: []want{{kind: HintRopeBase, value: 10000, ours: 20000, tol: 1e-3}}},
		{name: "NEOX and base 50000 reference", hp: llama, ref: rot(forward.RopeNeox, 50000, 1, 0, nil), ours: norm,
			want: []want{{kind: HintRopeMode, value: forward.RopeNeox, ours: forward.RopeNorm}, {kind: HintRopeBase, value: 50000, ours: 10000, tol: 1e-3}}},
		{name: "freq scale 0.25 reference", hp: llama, ref: rot(forward.RopeNorm, 10000, 0.25, 0, nil), ours: norm,
			want: []want{{kind: HintRopeFreqScale, value: 0.25, ours: 1, tol: 1e-3}}},
		{name: "positions t+1 ours", hp: llama, ref: norm, ours: rot(forward.RopeNorm, 10000, 1, 1, nil),
			want: []want{{kind: HintRopePosition, value: 0, ours: 1, text: "by position t and layerdiff's by t+1"}}},
		{name: "freq factors ignored by ours", hp: &llama3, ref: rot(forward.RopeNorm, 10000, 1, 0, ff), ours: norm,
			want: []want{{kind: HintRopeFreqFactors, value: 1, ours: 0}}},
		{name: "reference NEOX, ours unexplained", hp: llama, ref: rot(forward.RopeNeox, 10000, 1, 0, nil), ours: hintMap(norm, func(v float32) float32 { return 2 * v }),
			want: []want{{kind: HintRopeMode, value: forward.RopeNeox, text: "not the model's NORM rotation"}}},
		// negative cases
		{name: "both NORM", hp: llama, ref: norm, ours: slices.Clone(norm)},
		{name: "ours scaled", hp: llama, ref: norm, ours: hintMap(norm, func(v float32) float32 { return 2 * v })}, // generic hint, not a RoPE one
		{name: "ours noisy", hp: llama, ref: norm, ours: func() []float32 {
			out := slices.Clone(norm)
			for i, v := range hintVec(hintRand(9), len(out)) {
				out[i] += 1e-2 * v
			}
			return out
		}()},
		{name: "reference is not a rotation", hp: llama, ref: hintVec(hintRand(7), len(x)), ours: norm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := Hints(Input{Name: "Qcur-0", Op: "ROPE", Ne: ne, Ref: tt.ref, Isolated: tt.ours, Inputs: []*tensor.Tensor{{Data: x, Ne: ne}, nil}, Hparams: tt.hp, T: T})
			var rope []compare.Hint
			for _, h := range hs {
				if strings.HasPrefix(h.Kind, "rope-") {
					rope = append(rope, h)
				}
			}
			if len(rope) != len(tt.want) {
				t.Fatalf("hints %q, want %d RoPE hints: %+v", hintKinds(hs), len(tt.want), hs)
			}
			for i, w := range tt.want {
				h := rope[i]
				if h.Kind != w.kind {
					t.Errorf("hint %d: kind %s, want %s", i, h.Kind, w.kind)
				}
				if e := math.Abs(float64(h.Value) - w.value); e > w.tol*math.Abs(w.value) {
					t.Errorf("%s: value %v, want %v", h.Kind, h.Value, w.value)
				}
				if w.ours != 0 && (h.Ours == nil || math.Abs(float64(*h.Ours)-w.ours) > w.tol*math.Abs(w.ours)) {
					t.Errorf("%s: ours %v, want %v", h.Kind, h.Ours, w.ours)
				}
				if !strings.Contains(h.Text, w.text) {
					t.Errorf("%s: text %q does not say %q", h.Kind, h.Text, w.text)
				}
				if h.Model == nil {
					t.Errorf("%s: no model value", h.Kind)
				}
				t.Logf("%s", h.Text)
			}
		})
	}
}

func TestRopeFit(t *testing.T) {
	x, ne := hintRopeInput(3, 128, 2, 6)
	for _, mode := range []int{forward.RopeNorm, forward.RopeNeox} {
		for _, tt := range []struct{ base, scale float64 }{{10000, 1}, {20000, 1}, {500000, 1}, {1e6, 0.125}, {10000, 0.5}} {
			y := hintF32(ropePredict(x, ne4(ne), 128, 1, ropeHyp{mode: mode, base: tt.base, scale: tt.scale}))
			b, s, ok := ropeFit(x, y, ne4(ne), 128, mode, nil)
			if !ok || relDiff(b, tt.base) > 1e-4 || relDiff(s, tt.scale) > 1e-4 {
				t.Errorf("mode %d base %g scale %g: fit %g %g %v", mode, tt.base, tt.scale, b, s, ok)
			}
		}
	}
	// one position carries no angle
	if _, _, ok := ropeFit(x[:256], x[:256], [4]int64{128, 2, 1, 1}, 128, forward.RopeNorm, nil); ok {
		t.Error("fit with one position")
	}
}

func hintRMSNorm(x []float32, n int, eps float64) []float32 { return hintF32(rmsPredict(x, n, eps)) }

func TestHintRMSEps(t *testing.T) {
	const n, rows = 256, 12
	x := hintVec(hintRand(4), n*rows)
	hp := &forward.Hparams{NormRMSEps: 1e-3}
	noisy := func(y []float32) []float32 {
		out := slices.Clone(y)
		for i, v := range hintVec(hintRand(5), len(out)) {
			out[i] += 1e-3 * v
		}
		return out
	}
	tests := []struct {
		name      string
		hp        *forward.Hparams
		ref, ours []float32
		want      bool
		value     float64
		ours2     float64 // layerdiff's fitted eps, 0 for none
		text      string
	}{
		{name: "reference 1e-5, ours 1e-3", hp: hp, ref: hintRMSNorm(x, n, 1e-5), ours: hintRMSNorm(x, n, 1e-3), want: true, value: 1e-5, ours2: 1e-3, text: "the reference's output fits eps 1e-05"},
		{name: "reference 1e-6, ours 1e-5", hp: &forward.Hparams{NormRMSEps: 1e-5}, ref: hintRMSNorm(x, n, 1e-6), ours: hintRMSNorm(x, n, 1e-5), want: true, value: 1e-6, ours2: 1e-5},
		{name: "reference 0.1, no isolated output", hp: hp, ref: hintRMSNorm(x, n, 0.1), want: true, value: 0.1},
		{name: "ours 1e-2, reference the model's", hp: hp, ref: hintRMSNorm(x, n, 1e-3), ours: hintRMSNorm(x, n, 1e-2), want: true, value: 1e-3, ours2: 1e-2, text: "layerdiff's fits 0.01"},
		// negative cases
		{name: "same eps", hp: hp, ref: hintRMSNorm(x, n, 1e-3), ours: hintRMSNorm(x, n, 1e-3)},
		{name: "ours noisy", hp: hp, ref: hintRMSNorm(x, n, 1e-3), ours: noisy(hintRMSNorm(x, n, 1e-3))},
		{name: "reference noisy", hp: hp, ref: noisy(hintRMSNorm(x, n, 1e-3)), ours: hintRMSNorm(x, n, 1e-3)},
		{name: "no model, no ours", ref: hintRMSNorm(x, n, 1e-3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := Hints(Input{Name: "norm-0", Op: "RMS_NORM", Ne: []int64{n, rows}, Ref: tt.ref, Isolated: tt.ours, Inputs: []*tensor.Tensor{{Data: x}}, Hparams: tt.hp, T: rows})
			h := findHint(hs, HintRMSEps)
			if !tt.want {
				if h != nil {
					t.Fatalf("hint %+v", h)
				}
				return
			}
			if h == nil {
				t.Fatalf("hints %+v, want rms-eps", hs)
			}
			t.Logf("%s", h.Text)
			if e := math.Abs(float64(h.Value) - tt.value); e > 1e-2*tt.value {
				t.Errorf("value %v, want %v", h.Value, tt.value)
			}
			if tt.ours2 != 0 && (h.Ours == nil || math.Abs(float64(*h.Ours)-tt.ours2) > 1e-2*tt.ours2) {
				t.Errorf("ours %v, want %v", h.Ours, tt.ours2)
			}
			if tt.hp != nil && (h.Model == nil || float64(*h.Model) != float64(tt.hp.NormRMSEps)) {
				t.Errorf("model %v", h.Model)
			}
			if !strings.Contains(h.Text, tt.text) {
				t.Errorf("text %q does not say %q", h.Text, tt.text)
			}
		})
	}
}

// hintWeights is an in-memory Weights.
type hintWeights map[string]struct {
	ne   []int64
	data []float32
}

func (m hintWeights) Shape(name string) ([]int64, bool) {
	w, ok := m[name]
	return w.ne, ok
}

func (m hintWeights) Row(name string, row int, dst []float32) error {
	w, ok := m[name]
	if !ok {
		return fmt.Errorf("no weight %q", name)
	}
	n := int(w.ne[0])
	if len(dst) != n || row < 0 || (row+1)*n > len(w.data) {
		return fmt.Errorf("%s: row %d of %d", name, row, len(dst))
	}
	copy(dst, w.data[row*n:(row+1)*n])
	return nil
}

func hintMatVec(w []float32, k, n int, x []float32, transposed bool) []float32 {
	cols := len(x) / k
	out := make([]float32, cols*n)
	for t := 0; t < cols; t++ {
		for r := 0; r < n; r++ {
			var s float64
			for c := 0; c < k; c++ {
				wv := w[r*k+c]
				if transposed {
					wv = w[c*k+r]
				}
				s += float64(wv) * float64(x[t*k+c])
			}
			out[t*n+r] = float32(s)
		}
	}
	return out
}

func TestHintWeightTransposed(t *testing.T) {
	const k, T = 48, 6
	r := hintRand(6)
	w := hintVec(r, k*k)
	x := hintVec(r, k*T)
	ws := hintWeights{"blk.0.attn_q.weight": {ne: []int64{k, k}, data: w}, "rect": {ne: []int64{k, k / 2}, data: w[:k*k/2]}}
	wx, wtx := hintMatVec(w, k, k, x, false), hintMatVec(w, k, k, x, true)
	noisy := slices.Clone(wx)
	for i, v := range hintVec(r, len(noisy)) {
		noisy[i] += 0.3 * v
	}
	tests := []struct {
		name      string
		weight    string
		ref, ours []float32
		want      string
	}{
		{name: "ours transposed", ref: wx, ours: wtx, want: "layerdiff's output matches the transposed weight"},
		{name: "reference transposed", ref: wtx, ours: wx, want: "the reference's output matches the transposed weight"},
		{name: "reference transposed, no isolated output", ref: wtx, want: "the reference's output matches the transposed weight"},
		{name: "noise", ref: wx, ours: noisy},
		{name: "same", ref: wx, ours: wx},
		{name: "no such weight", weight: "blk.9.attn_q.weight", ref: wx, ours: wtx},
		{name: "not square", weight: "rect", ref: wx, ours: wtx},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wn := tt.weight
			if wn == "" {
				wn = "blk.0.attn_q.weight"
			}
			hs := Hints(Input{Name: "Qcur-0", Op: "MUL_MAT", Ne: []int64{k, T}, Ref: tt.ref, Isolated: tt.ours,
				InputNames: []string{wn, "attn_norm-0"}, Inputs: []*tensor.Tensor{nil, {Data: x}}, Weights: ws, T: T})
			h := findHint(hs, HintWeightTransposed)
			if tt.want == "" {
				if h != nil {
					t.Fatalf("hint %+v", h)
				}
				return
			}
			if h == nil {
				t.Fatalf("hints %+v", hs)
			}
			if !strings.Contains(h.Text, tt.want) {
				t.Errorf("text %q", h.Text)
			}
		})
	}
}

func TestHintTokens(t *testing.T) {
	const n, nv = 16, 40
	emb := hintVec(hintRand(8), n*nv)
	ws := hintWeights{"token_embd.weight": {ne: []int64{n, nv}, data: emb}}
	rows := func(ids ...int32) []float32 {
		var out []float32
		for _, id := range ids {
			out = append(out, emb[int(id)*n:int(id+1)*n]...)
		}
		return out
	}
	const bos = 1
	tests := []struct {
		name      string
		refIDs    []int32
		ours      []int32
		refTokens []int32
		kind      string
		value     float64
		text      string
	}{
		{name: "reference has BOS", refIDs: []int32{bos, 5, 7, 9, 11}, ours: []int32{5, 7, 9, 11}, kind: HintBOS, value: 1, text: "the reference starts with BOS (id 1)"},
		{name: "reference has BOS, same length", refIDs: []int32{bos, 5, 7, 9, 11}, ours: []int32{5, 7, 9, 11, 13}, kind: HintBOS, value: 1},
		{name: "ours has BOS", refIDs: []int32{5, 7, 9, 11}, ours: []int32{bos, 5, 7, 9, 11}, kind: HintBOS, value: -1, text: "layerdiff's tokens start with BOS (id 1)"},
		{name: "reference has another token in front", refIDs: []int32{3, 5, 7, 9, 11}, ours: []int32{5, 7, 9, 11}, kind: HintTokenShift, value: 1},
		{name: "ours has another token in front", refIDs: []int32{5, 7, 9, 11}, ours: []int32{3, 5, 7, 9, 11}, kind: HintTokenShift, value: -1},
		{name: "token ids differ", refIDs: []int32{bos, 5, 8, 9, 30}, ours: []int32{bos, 5, 7, 9, 11}, kind: HintTokenMismatch, value: 2, text: "positions 2, 4 (2 of 5): the reference's rows there are not the embeddings of layerdiff's ids 7, 11; they are the embeddings of ids 8, 30"},
		{name: "token ids differ, named by the reference", refIDs: []int32{bos, 5, 8, 9, 11}, ours: []int32{bos, 5, 7, 9, 11}, refTokens: []int32{bos, 5, 8, 9, 11}, kind: HintTokenMismatch, value: 1, text: "they are the embeddings of ids 8"},
		// negative cases
		{name: "same tokens", refIDs: []int32{bos, 5, 7, 9, 11}, ours: []int32{bos, 5, 7, 9, 11}},
		{name: "unrelated", refIDs: []int32{2, 4, 6, 8, 10}, ours: []int32{bos, 5, 7, 9, 11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := rows(tt.refIDs...)
			hs := Hints(Input{Name: "inp_embd", Op: "GET_ROWS", Ne: []int64{n, int64(len(tt.refIDs))}, Ref: ref,
				Ours: &tensor.Tensor{Ne: []int64{n, int64(len(tt.ours))}, Data: rows(tt.ours...)}, InputNames: []string{"token_embd.weight", "leaf_2"},
				Inputs: []*tensor.Tensor{nil, nil}, Weights: ws, Tokens: tt.ours, RefTokens: tt.refTokens, BOS: bos})
			if tt.kind == "" {
				if len(hs) != 0 {
					t.Fatalf("hints %+v", hs)
				}
				return
			}
			h := findHint(hs, tt.kind)
			if h == nil {
				t.Fatalf("hints %+v, want %s", hs, tt.kind)
			}
			t.Logf("%s", h.Text)
			if float64(h.Value) != tt.value {
				t.Errorf("value %v, want %v", h.Value, tt.value)
			}
			if !strings.Contains(h.Text, tt.text) {
				t.Errorf("text %q does not say %q", h.Text, tt.text)
			}
		})
	}
}

func TestHintsRendered(t *testing.T) {
	rep := &compare.Report{Schema: compare.SchemaVersion, Verdict: compare.VerdictFail,
		Tensors:         []compare.Row{{Key: "Qcur-0", Name: "Qcur-0", Op: "MUL_MAT", Ne: []int64{4}, Status: compare.Fail, FirstFailToken: -1}},
		FirstDivergence: &compare.Divergence{Row: 0, Key: "Qcur-0", Name: "Qcur-0", Op: "MUL_MAT", Token: -1},
		Blame: &compare.Blame{Key: "Qcur-0", Name: "Qcur-0", Op: "MUL_MAT", By: "isolation", Evidence: []string{"e"},
			Hints: []compare.Hint{{Kind: HintSignFlip, Text: "layerdiff's output is the reference's negated <sign>", Value: -1, NMSE: 0, Baseline: 4}}}}
	var o render.Options
	for _, f := range []struct {
		name string
		fn   func(*bytes.Buffer) error
		want string
	}{
		{"text", func(b *bytes.Buffer) error { return o.Text(b, rep) }, "hint       layerdiff's output is the reference's negated <sign>"},
		{"markdown", func(b *bytes.Buffer) error { return o.Markdown(b, rep) }, "**Hint (sign-flip):**"},
		{"html", func(b *bytes.Buffer) error { return o.HTML(b, rep) }, "<strong>Hint (sign-flip):</strong> layerdiff&#39;s output is the reference&#39;s negated &lt;sign&gt;"},
		{"json", func(b *bytes.Buffer) error { return compare.WriteJSON(b, rep) }, `"kind": "sign-flip"`},
	} {
		var b bytes.Buffer
		if err := f.fn(&b); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if !strings.Contains(b.String(), f.want) {
			t.Errorf("%s output lacks %q:\n%s", f.name, f.want, b.String())
		}
	}
	var b bytes.Buffer
	if err := compare.WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	back, err := compare.ReadJSON(bytes.NewReader(b.Bytes()), "hints.json")
	if err != nil {
		t.Fatal(err)
	}
	if h := back.Blame.Hints; len(h) != 1 || h[0].Kind != HintSignFlip || h[0].Value != -1 || h[0].Baseline != 4 || h[0].Ours != nil {
		t.Errorf("read back %+v", h)
	}
}

// roundF16 rounds as ggml's f32 -> f16 -> f32 does: f16 values are fixed points.
func TestRoundF16(t *testing.T) {
	for _, tt := range []struct{ in, want float32 }{{1, 1}, {1.0001, 1}, {65504, 65504}, {1 + 1.0/1024, 1 + 1.0/1024}, {1 + 1.0/4096, 1}} {
		if got := roundF16(tt.in); got != tt.want || roundF16(got) != got {
			t.Errorf("roundF16(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// hintPermute12 lays a {n0, n1, n2} tensor out as {n0, n2, n1}.
func hintPermute12(a []float32, n0, n1, n2 int) []float32 {
	out := make([]float32, len(a))
	for j := 0; j < n2; j++ {
		for i := 0; i < n1; i++ {
			copy(out[(i*n2+j)*n0:(i*n2+j+1)*n0], a[(j*n1+i)*n0:(j*n1+i+1)*n0])
		}
	}
	return out
}

func TestIndexMaps(t *testing.T) {
	// the index maps are permutations matching the injections
	a := hintVec(hintRand(11), 8*3*5)
	ne := []int64{8, 3, 5}
	for _, tt := range []struct {
		name string
		m    func(int) int
		want []float32
	}{
		{"transpose", transposedIndex(8, 3), planted(a, "transpose", ne)},
		{"permute", permutedIndex([3]int64{8, 3, 5}), hintPermute12(a, 8, 3, 5)},
	} {
		seen := make([]bool, len(a))
		for i := range a {
			j := tt.m(i)
			if j < 0 || j >= len(a) || seen[j] {
				t.Fatalf("%s: index %d -> %d", tt.name, i, j)
			}
			seen[j] = true
			if a[j] != tt.want[i] {
				t.Fatalf("%s: element %d", tt.name, i)
			}
		}
	}
}

// planted is what `--inject NAME:swap` and `:transpose` plant
// (pipeline.Injection), written out here by element index: swap exchanges
// the halves of every row of ne[0]; transpose reads each ne[0]×ne[1]
// matrix as ne[1] rows of ne[0] and writes it as ne[0] rows of ne[1].
func planted(a []float32, kind string, ne []int64) []float32 {
	out := make([]float32, len(a))
	n0, n1 := int(ne[0]), int(ne[1])
	for i := range out {
		switch c, m := i%n0, i/(n0*n1); kind {
		case "swap":
			out[i] = a[i-c+(c+n0/2)%n0]
		case "transpose":
			j := i - m*n0*n1 // row j/n1, column j%n1 of the result
			out[i] = a[m*n0*n1+(j%n1)*n0+j/n1]
		}
	}
	return out
}
