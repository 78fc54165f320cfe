package compare

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

var (
	nan  = float32(math.NaN())
	inf  = float32(math.Inf(1))
	ninf = float32(math.Inf(-1))
	// smallest positive subnormal float32
	sub = math.Float32frombits(1)
)

func next32(x float32, toward float32) float32 { return math.Nextafter32(x, toward) }

func TestULPDistance(t *testing.T) {
	cases := []struct {
		name string
		a, b float32
		want uint32
		ok   bool
	}{
		{"equal", 1, 1, 0, true},
		{"one ulp up", 1, next32(1, 2), 1, true},
		{"one ulp down across the binade", 1, next32(1, 0), 1, true},
		{"+0 -0", 0, float32(math.Copysign(0, -1)), 0, true},
		{"subnormals across zero", -sub, sub, 2, true},
		{"subnormal to zero", sub, 0, 1, true},
		{"largest subnormal to smallest normal", math.Float32frombits(0x007fffff), math.Float32frombits(0x00800000), 1, true},
		{"max to -max", math.MaxFloat32, -math.MaxFloat32, 2 * 0x7f7fffff, true},
		{"1 to 2", 1, 2, 1 << 23, true},
		{"NaN", nan, 1, 0, false},
		{"Inf", inf, math.MaxFloat32, 0, false},
		{"-Inf", 0, ninf, 0, false},
	}
	for _, c := range cases {
		for _, swap := range []bool{false, true} {
			a, b := c.a, c.b
			if swap {
				a, b = b, a
			}
			got, ok := ULPDistance(a, b)
			if got != c.want || ok != c.ok {
				t.Errorf("%s (swap %v): ULPDistance(%g, %g) = %d, %v; want %d, %v", c.name, swap, a, b, got, ok, c.want, c.ok)
			}
		}
	}
}

func TestMeasureHandComputed(t *testing.T) {
	a := []float32{1, 2, 3, 4}
	b := []float32{1, 2.5, 3, 3}
	tol := Tolerance{ATol: 0.6}
	m := Measure(a, b, []int64{2, 2}, tol)
	// diffs 0, -0.5, 0, 1: sse 1.25; Σa² 30; Σb² 25.25; Σab 27.
	checks := []struct {
		name      string
		got, want float64
	}{
		{"nmse", float64(m.NMSE), 1.25 / 30},
		{"rmse", float64(m.RMSE), math.Sqrt(1.25 / 4)},
		{"max abs", float64(m.MaxAbs), 1},
		{"max rel", float64(m.MaxRel), 0.25},
		{"cosine", float64(m.Cosine), 27 / (math.Sqrt(30) * math.Sqrt(25.25))},
		{"bound", float64(m.Bound), 0.6},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 1e-15*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%s = %.17g, want %.17g", c.name, c.got, c.want)
		}
	}
	if m.N != 4 || m.Finite != 4 || m.Mismatches != 1 || m.BitIdentical != 2 {
		t.Errorf("N %d Finite %d Mismatches %d BitIdentical %d; want 4 4 1 2", m.N, m.Finite, m.Mismatches, m.BitIdentical)
	}
	if m.MaxAbsAt == nil || m.MaxAbsAt.Index != 3 || !slices.Equal(m.MaxAbsAt.Coord, []int64{1, 1}) || m.MaxAbsAt.Ref != 4 || m.MaxAbsAt.Other != 3 {
		t.Errorf("MaxAbsAt = %+v, want index 3 coord [1 1] 4 vs 3", m.MaxAbsAt)
	}
	if m.FirstDiff == nil || m.FirstDiff.Index != 1 {
		t.Errorf("FirstDiff = %+v, want index 1", m.FirstDiff)
	}
	// Reversed arguments: NMSE is normalized by the other side, the rest
	// is symmetric.
	r := Measure(b, a, []int64{2, 2}, tol)
	if got, want := float64(r.NMSE), 1.25/25.25; math.Abs(got-want) > 1e-16 {
		t.Errorf("reversed nmse = %g, want %g", got, want)
	}
	if r.MaxAbs != m.MaxAbs || r.MaxRel != m.MaxRel || r.Cosine != m.Cosine || r.RMSE != m.RMSE || r.BitIdentical != m.BitIdentical {
		t.Errorf("reversed symmetric metrics differ: %+v vs %+v", r, m)
	}
	// rtol is relative to the reference: |4−3| ≤ 0.25·4 but not ≤ 0.25·3.
	if got := Measure(a, b, nil, Tolerance{RTol: 0.25}).Mismatches; got != 0 {
		t.Errorf("rtol 0.25 mismatches = %d, want 0", got)
	}
	if got := Measure(b, a, nil, Tolerance{RTol: 0.25}).Mismatches; got != 1 {
		t.Errorf("reversed rtol 0.25 mismatches = %d, want 1", got)
	}
}

func TestMeasureNonFinite(t *testing.T) {
	a := []float32{nan, 1, inf, ninf, nan, 2, inf}
	b := []float32{nan, nan, inf, inf, 3, 2, 5}
	m := Measure(a, b, nil, Tolerance{})
	want := Metrics{N: 7, Finite: 1, RefNaN: 2, RefInf: 3, OtherNaN: 2, OtherInf: 2, SharedNonFinite: 2, NonFiniteMismatch: 4, Mismatches: 4, BitIdentical: 3}
	got := Metrics{N: m.N, Finite: m.Finite, RefNaN: m.RefNaN, RefInf: m.RefInf, OtherNaN: m.OtherNaN, OtherInf: m.OtherInf,
		SharedNonFinite: m.SharedNonFinite, NonFiniteMismatch: m.NonFiniteMismatch, Mismatches: m.Mismatches, BitIdentical: m.BitIdentical}
	if !equalCounts(got, want) {
		t.Errorf("counts = %+v\nwant %+v", got, want)
	}
	if m.NMSE != 0 || m.MaxAbs != 0 || m.Cosine != 1 {
		t.Errorf("finite metrics over the one equal pair: nmse %g maxabs %g cosine %g; want 0 0 1", m.NMSE, m.MaxAbs, m.Cosine)
	}
	if m.FirstDiff == nil || m.FirstDiff.Index != 1 {
		t.Errorf("FirstDiff = %+v, want index 1 (NaN vs NaN is identical)", m.FirstDiff)
	}
	j := Judge(&m, Tolerance{NMSEMax: 1})
	if j.Status != Fail {
		t.Errorf("one-sided NaN judged %s, want fail", j.Status)
	}
	// Shared NaN alone passes, with a note, unless the policy says otherwise.
	s := Measure([]float32{nan, 1}, []float32{nan, 1}, nil, Tolerance{})
	if j := Judge(&s, Tolerance{}); j.Status != Pass || len(j.Notes) != 1 {
		t.Errorf("shared NaN: %+v, want pass with a note", j)
	}
	if j := Judge(&s, Tolerance{FailSharedNonFinite: true}); j.Status != Fail {
		t.Errorf("shared NaN with fail_shared_nonfinite: %s, want fail", j.Status)
	}
}

func equalCounts(a, b Metrics) bool {
	return a.N == b.N && a.Finite == b.Finite && a.RefNaN == b.RefNaN && a.RefInf == b.RefInf && a.OtherNaN == b.OtherNaN &&
		a.OtherInf == b.OtherInf && a.SharedNonFinite == b.SharedNonFinite && a.NonFiniteMismatch == b.NonFiniteMismatch &&
		a.Mismatches == b.Mismatches && a.BitIdentical == b.BitIdentical
}

func TestMeasureZerosAndSubnormals(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	cases := []struct {
		name         string
		a, b         []float32
		nmse, cosine float64
		maxRel       float64
		bitIdentical int64
		ulpMax       uint32
	}{
		{"both zero", []float32{0, 0}, []float32{0, 0}, 0, 1, 0, 2, 0},
		{"ref zero", []float32{0, 0}, []float32{1, 0}, math.Inf(1), 0, 1, 1, 0x3f800000},
		{"other zero", []float32{1, 0}, []float32{0, 0}, 1, 0, 1, 1, 0x3f800000},
		{"signed zeros", []float32{0}, []float32{negZero}, 0, 1, 0, 0, 0},
		{"subnormal neighbours", []float32{sub}, []float32{2 * sub}, 1, 1, 0.5, 0, 1},
		{"empty", nil, nil, 0, 1, 0, 0, 0},
	}
	for _, c := range cases {
		m := Measure(c.a, c.b, nil, Tolerance{})
		if float64(m.NMSE) != c.nmse || float64(m.Cosine) != c.cosine || float64(m.MaxRel) != c.maxRel || m.BitIdentical != c.bitIdentical || m.ULP.Max != c.ulpMax {
			t.Errorf("%s: nmse %g cosine %g maxrel %g bitid %d ulpmax %d; want %g %g %g %d %d",
				c.name, m.NMSE, m.Cosine, m.MaxRel, m.BitIdentical, m.ULP.Max, c.nmse, c.cosine, c.maxRel, c.bitIdentical, c.ulpMax)
		}
	}
}

// TestMismatchThresholdEdges puts |a−b| exactly on atol + rtol·|a| and
// one float32 ulp beyond it, in both argument orders.
func TestMismatchThresholdEdges(t *testing.T) {
	cases := []struct {
		name string
		tol  Tolerance
		a, b float32
		want int64
	}{
		{"atol on the bound", Tolerance{ATol: 0.5}, 1, 1.5, 0},
		{"atol one ulp beyond", Tolerance{ATol: 0.5}, 1, next32(1.5, 2), 1},
		{"atol one ulp inside", Tolerance{ATol: 0.5}, 1, next32(1.5, 0), 0},
		{"rtol on the bound", Tolerance{RTol: 0.25}, 2, 2.5, 0},
		{"rtol one ulp beyond", Tolerance{RTol: 0.25}, 2, next32(2.5, 3), 1},
		{"atol+rtol on the bound", Tolerance{ATol: 0.25, RTol: 0.125}, 2, 2.5, 0},
		{"atol+rtol one ulp beyond", Tolerance{ATol: 0.25, RTol: 0.125}, 2, next32(2.5, 3), 1},
		{"zero tolerance equal", Tolerance{}, 3, 3, 0},
		{"zero tolerance one ulp", Tolerance{}, 3, next32(3, 4), 1},
		{"zero tolerance signed zero", Tolerance{}, 0, float32(math.Copysign(0, -1)), 0},
	}
	for _, c := range cases {
		if got := Measure([]float32{c.a}, []float32{c.b}, nil, c.tol).Mismatches; got != c.want {
			t.Errorf("%s: mismatches = %d, want %d", c.name, got, c.want)
		}
	}
	// atol is symmetric; so is the atol-only bound in reversed order.
	if got := Measure([]float32{1.5}, []float32{1}, nil, Tolerance{ATol: 0.5}).Mismatches; got != 0 {
		t.Errorf("reversed atol on the bound: %d, want 0", got)
	}
	// rtol·|a| uses the reference: reversed, |2.5−2| = 0.5 ≤ 0.25·2.5.
	if got := Measure([]float32{next32(2.5, 3)}, []float32{2}, nil, Tolerance{RTol: 0.25}).Mismatches; got != 0 {
		t.Errorf("reversed rtol: %d, want 0", got)
	}
}

func TestNMSEThresholdEdges(t *testing.T) {
	m := Measure([]float32{1, 2, 3, 4}, []float32{1, 2.5, 3, 3}, nil, Tolerance{ATol: 10})
	nm := float64(m.NMSE)
	cases := []struct {
		limit float64
		want  Status
	}{
		{nm, Pass},
		{math.Nextafter(nm, 1), Pass},
		{math.Nextafter(nm, 0), Fail},
		{math.Inf(1), Pass},
		{0, Fail},
	}
	for _, c := range cases {
		tol := Tolerance{NMSEMax: Float(c.limit), ATol: 10}
		if j := Judge(&m, tol); j.Status != c.want {
			t.Errorf("nmse %.17g with limit %.17g: %s %v, want %s", nm, c.limit, j.Status, j.Reasons, c.want)
		}
	}
	// The reason prints enough digits to tell the two apart.
	j := Judge(&m, Tolerance{NMSEMax: Float(math.Nextafter(nm, 0)), ATol: 10})
	if len(j.Reasons) != 1 || j.Reasons[0] != "nmse 0.041666666666666664 > 0.041666666666666657" {
		t.Errorf("reason = %q", j.Reasons)
	}
}

func TestMismatchFraction(t *testing.T) {
	a := make([]float32, 1000)
	b := make([]float32, 1000)
	for i := range a {
		a[i], b[i] = 1, 1
	}
	b[10], b[20] = 2, 2
	m := Measure(a, b, nil, Tolerance{ATol: 0.5})
	for _, c := range []struct {
		frac float64
		want Status
	}{{0, Fail}, {0.001, Fail}, {0.002, Pass}, {math.Nextafter(0.002, 0), Fail}} {
		if j := Judge(&m, Tolerance{NMSEMax: 1, ATol: 0.5, MismatchFracMax: Float(c.frac)}); j.Status != c.want {
			t.Errorf("frac %g: %s, want %s", c.frac, j.Status, c.want)
		}
	}
}

func TestULPPercentiles(t *testing.T) {
	// distances 0..99: nearest-rank p50 is the 50th smallest (49), p99 the
	// 99th (98).
	a := make([]float32, 100)
	b := make([]float32, 100)
	for i := range a {
		a[i] = 1
		b[i] = math.Float32frombits(math.Float32bits(1) + uint32(99-i))
	}
	u := Measure(a, b, nil, Tolerance{}).ULP
	if u.P50 != 49 || u.P99 != 98 || u.Max != 99 {
		t.Errorf("ULP = %+v, want p50 49 p99 98 max 99", *u)
	}
	// Random distances spanning both histogram levels against a sort: per
	// trial, every distance small (both percentiles in bucket 0), every one
	// large, a mix, or a mix with sign flips.
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 40; trial++ {
		n := 1 + rng.IntN(3000)
		a := make([]float32, n)
		b := make([]float32, n)
		d := make([]uint32, n)
		mode := trial % 4
		for i := range a {
			a[i] = float32(rng.NormFloat64())
			var k uint32
			switch c := rng.IntN(3); {
			case mode == 0 || (mode >= 2 && c == 0):
				k = uint32(rng.IntN(4))
			case mode == 1 || c == 1:
				k = uint32(rng.IntN(1 << 20))
			default:
				k = uint32(rng.IntN(70000))
			}
			bits := math.Float32bits(a[i])
			b[i] = math.Float32frombits(bits + k) // same sign: distance k (finite here)
			if mode == 3 && rng.IntN(5) == 0 {
				b[i] = -b[i]
			}
			d[i], _ = ULPDistance(a[i], b[i])
		}
		slices.Sort(d)
		rank := func(p int) uint32 { return d[nearestRank(uint64(p), uint64(n))-1] }
		u := Measure(a, b, nil, Tolerance{}).ULP
		if u.P50 != rank(50) || u.P99 != rank(99) || u.Max != d[n-1] {
			t.Fatalf("trial %d (n %d): %+v, want p50 %d p99 %d max %d", trial, n, *u, rank(50), rank(99), d[n-1])
		}
	}
}

func TestPerTokenAndWorst(t *testing.T) {
	// {3, 4}: 4 tokens of 3; token 2 differs.
	a := []float32{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}
	b := slices.Clone(a)
	b[7] = 2.5
	b[8] = 3.125
	meas := measureFull(a, b, Layout{Ne: []int64{3, 4}, TokenStride: 3, TokenCount: 4, TokenBase: 10}, Tolerance{}, 3)
	if len(meas.PerToken) != 4 {
		t.Fatalf("per token: %d entries", len(meas.PerToken))
	}
	for i, ts := range meas.PerToken {
		wantNMSE := 0.0
		if i == 2 {
			wantNMSE = (0.25 + 0.015625) / 14
		}
		if ts.Token != 10+i || ts.N != 3 || float64(ts.NMSE) != wantNMSE {
			t.Errorf("token %d: %+v, want token %d nmse %g", i, ts, 10+i, wantNMSE)
		}
	}
	if len(meas.Worst) != 2 || meas.Worst[0].Index != 7 || meas.Worst[1].Index != 8 || !slices.Equal(meas.Worst[0].Coord, []int64{1, 2}) {
		t.Errorf("worst = %+v", meas.Worst)
	}
	// Ties keep the lower index; the heap keeps only k.
	w := newWorst(2)
	for i, s := range []float64{1, 3, 3, 2, 3} {
		w.offer(int64(i), s)
	}
	if got := w.sorted(); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("worst with ties = %v, want [1 2]", got)
	}
}

func TestCoord(t *testing.T) {
	cases := []struct {
		i    int64
		ne   []int64
		want []int64
	}{
		{0, []int64{4, 3, 2}, []int64{0, 0, 0}},
		{5, []int64{4, 3, 2}, []int64{1, 1, 0}},
		{23, []int64{4, 3, 2}, []int64{3, 2, 1}},
		{7, []int64{64, 1, 1}, []int64{7}},
		{3, nil, []int64{}},
	}
	for _, c := range cases {
		if got := Coord(c.i, c.ne); !slices.Equal(got, c.want) {
			t.Errorf("Coord(%d, %v) = %v, want %v", c.i, c.ne, got, c.want)
		}
	}
}

func TestMeasureLogits(t *testing.T) {
	ref := []float32{1, 2, 3, 0, 0, 5}
	oth := []float32{1, 3, 2, 0, 0, 5}
	lg := MeasureLogits(ref, oth, 3, 4, TieRule{Gap: 1e-3})
	if len(lg.Tokens) != 2 {
		t.Fatalf("%d tokens", len(lg.Tokens))
	}
	t0, t1 := lg.Tokens[0], lg.Tokens[1]
	if t0.Token != 4 || t0.RefArgmax != 2 || t0.OtherArgmax != 1 || t0.Top5 != 3 || float64(t0.Gap) != 1 || t0.NearTie {
		t.Errorf("token 0 = %+v", t0)
	}
	// KL by the textbook formula.
	soft := func(x []float64) []float64 {
		s := 0.0
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = math.Exp(v)
			s += out[i]
		}
		for i := range out {
			out[i] /= s
		}
		return out
	}
	p, q := soft([]float64{1, 2, 3}), soft([]float64{1, 3, 2})
	kl := 0.0
	for i := range p {
		kl += p[i] * math.Log(p[i]/q[i])
	}
	if math.Abs(float64(t0.KL)-kl) > 1e-15 {
		t.Errorf("KL = %.17g, want %.17g", t0.KL, kl)
	}
	if t1.RefArgmax != 2 || t1.OtherArgmax != 2 || t1.KL != 0 || float64(t1.Gap) != 5 {
		t.Errorf("token 1 = %+v", t1)
	}
	if lg.ArgmaxAgree != 1 || lg.NearTies != 0 || float64(lg.MaxKL) != float64(t0.KL) {
		t.Errorf("summary %+v", lg)
	}
	// Near tie: gap 2^-10 below the threshold excuses the disagreement.
	g := float32(1.0 / 1024)
	lg = MeasureLogits([]float32{1, 1 + g, 0}, []float32{1 + g, 1, 0}, 3, 0, TieRule{Gap: 1e-2})
	if !lg.Tokens[0].NearTie || lg.NearTies != 1 || lg.ArgmaxAgree != 0 {
		t.Errorf("near tie: %+v", lg)
	}
	m := Metrics{N: 3, Finite: 3, ULP: &ULPStats{}, Logits: lg}
	if j := Judge(&m, Tolerance{NMSEMax: 1, ATol: 1, Logits: true, NearTieGap: 1e-2, KLMax: Float(math.Inf(1))}); j.Status != Pass {
		t.Errorf("near tie judged %s %v", j.Status, j.Reasons)
	}
	lg = MeasureLogits([]float32{1, 1 + g, 0}, []float32{1 + g, 1, 0}, 3, 0, TieRule{Gap: float64(g)})
	m.Logits = lg
	if j := Judge(&m, Tolerance{NMSEMax: 1, ATol: 1, Logits: true, NearTieGap: Float(g), KLMax: Float(math.Inf(1))}); j.Status != Fail {
		t.Errorf("gap equal to the threshold is not a near tie: judged %s", j.Status)
	}
	// NaN logits: KL undefined, argmax ignores NaN.
	lg = MeasureLogits([]float32{nan, 1, 2}, []float32{0, 1, 2}, 3, 0, TieRule{Gap: 0})
	if !math.IsNaN(float64(lg.Tokens[0].KL)) || lg.Tokens[0].RefArgmax != 2 || !math.IsNaN(float64(lg.MaxKL)) {
		t.Errorf("NaN logits: %+v", lg.Tokens[0])
	}
	lg = MeasureLogits([]float32{nan, nan}, []float32{0, 1}, 2, 0, TieRule{Gap: 0})
	if lg.Tokens[0].RefArgmax != -1 || lg.ArgmaxAgree != 0 {
		t.Errorf("all-NaN logits: %+v", lg.Tokens[0])
	}
}

func TestTopK(t *testing.T) {
	x := []float64{3, 1, 3, math.NaN(), 5, 2, 3}
	if got := topK(x, 5); !slices.Equal(got, []int{4, 0, 2, 6, 5}) {
		t.Errorf("topK = %v", got)
	}
	if got := topK([]float64{1}, 5); !slices.Equal(got, []int{0}) {
		t.Errorf("topK single = %v", got)
	}
}

func TestMeasurePartial(t *testing.T) {
	other := []float32{0.12345, 1, 1, 1, 1, -2.00006}
	p := &tensor.Partial{Index: []int64{0, 5, 99}, Values: []float64{0.1235, -2.0000, 7}, Quantum: 1e-4,
		Sum: 0.12345 + 4 - 2.00006, HasSum: true, SumQuantum: 1e-6}
	m := MeasurePartial(p, other, []int64{6}, Tolerance{NMSEMax: 0})
	if m.N != 2 || m.WithinQuantum != 1 || m.Mismatches != 1 || m.ULP != nil {
		t.Errorf("partial: N %d within %d mismatches %d ulp %v; want 2 1 1 nil", m.N, m.WithinQuantum, m.Mismatches, m.ULP)
	}
	if m.Sum == nil || !m.Sum.OK {
		t.Errorf("sum check: %+v", m.Sum)
	}
	// A sum that is off by more than printed precision allows fails in
	// bit-exact terms (nmse_max 0, no elementwise slack).
	p.Sum += 1e-5
	m = MeasurePartial(p, other, []int64{6}, Tolerance{})
	if m.Sum.OK {
		t.Errorf("sum off by 1e-5 with quantum 1e-6 passed: %+v", m.Sum)
	}
	if j := Judge(&m, Tolerance{}); j.Status != Fail {
		t.Errorf("judged %s", j.Status)
	}
	// The same offset is allowed once the NMSE limit implies it:
	// sqrt(n·nmse·Σb²) with n 6, Σb² ≈ 8.015 needs nmse ≥ 2.1e-12.
	m = MeasurePartial(p, other, []int64{6}, Tolerance{NMSEMax: 1e-10, MismatchFracMax: 1})
	if !m.Sum.OK {
		t.Errorf("sum with nmse 1e-10: %+v", m.Sum)
	}
	// Printed-precision edge (binary-exact numbers): |a−b| = quantum/2
	// agrees, one float32 ulp more does not, on either side.
	q := &tensor.Partial{Index: []int64{0}, Values: []float64{0.5}, Quantum: 0.25}
	for _, c := range []struct {
		b    float32
		want int64
	}{{0.625, 0}, {next32(0.625, 1), 1}, {0.375, 0}, {next32(0.375, 0), 1}} {
		if m := MeasurePartial(q, []float32{c.b}, nil, Tolerance{}); m.Mismatches != c.want {
			t.Errorf("%.9g vs printed 0.5±0.125: %d mismatches, want %d", c.b, m.Mismatches, c.want)
		}
	}
	// Sums: NaN on both sides agree, on one side fail.
	q = &tensor.Partial{Sum: math.NaN(), HasSum: true}
	if m := MeasurePartial(q, []float32{nan}, nil, Tolerance{}); !m.Sum.OK {
		t.Errorf("NaN sums: %+v", m.Sum)
	}
	if m := MeasurePartial(q, []float32{1}, nil, Tolerance{}); m.Sum.OK {
		t.Errorf("NaN vs 1 sum passed")
	}
}

func BenchmarkMeasure(b *testing.B) {
	const n = 1 << 22
	rng := rand.New(rand.NewPCG(5, 5))
	x := make([]float32, n)
	y := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		y[i] = x[i] * (1 + float32(rng.NormFloat64())*1e-6)
	}
	lay := Layout{Ne: []int64{4096, n / 4096}, TokenStride: 4096, TokenCount: n / 4096}
	b.SetBytes(8 * n)
	for b.Loop() {
		measureFull(x, y, lay, Tolerance{ATolRMS: 1e-4, RTol: 1e-4}, 10)
	}
}

func BenchmarkMeasureLogits(b *testing.B) {
	const nv, nt = 32000, 16
	rng := rand.New(rand.NewPCG(6, 6))
	x := make([]float32, nv*nt)
	y := make([]float32, nv*nt)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 3)
		y[i] = x[i] + float32(rng.NormFloat64()*1e-3)
	}
	b.SetBytes(8 * nv * nt)
	for b.Loop() {
		MeasureLogits(x, y, nv, 0, TieRule{Gap: 1e-3})
	}
}

// TestMeasureLogitsIdenticalRows checks the shortcut for bit-identical
// token rows against the full computation: the same top 5, and the KL that
// klDivergence gives for equal inputs (0); rows that differ, including
// identical rows with NaN, take the full path.
func TestMeasureLogitsIdenticalRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const nv, nt = 200, 4
	ref := make([]float32, nv*nt)
	for i := range ref {
		ref[i] = float32(rng.NormFloat64() * 4)
	}
	oth := slices.Clone(ref)
	oth[2*nv+17] += 0.25       // token 2 differs
	ref[3*nv+5] = float32(nan) // token 3: identical bits, NaN
	oth[3*nv+5] = float32(nan)
	lg := MeasureLogits(ref, oth, nv, 0, TieRule{Gap: 1e-3})
	for tok := 0; tok < nt; tok++ {
		a := make([]float64, nv)
		b := make([]float64, nv)
		for i := range a {
			a[i], b[i] = float64(ref[tok*nv+i]), float64(oth[tok*nv+i])
		}
		ta, tb := topK(a, 5), topK(b, 5)
		want := math.NaN()
		if tok != 3 {
			want = klDivergence(a, b)
		}
		got := lg.Tokens[tok]
		if got.RefArgmax != ta[0] || got.OtherArgmax != tb[0] || got.Top5 != overlap(ta, tb) {
			t.Errorf("token %d: %+v, full path top-5 %v %v", tok, got, ta, tb)
		}
		if math.Float64bits(float64(got.KL)) != math.Float64bits(want) && !(math.IsNaN(want) && math.IsNaN(float64(got.KL))) {
			t.Errorf("token %d: KL %v, full path %v", tok, got.KL, want)
		}
	}
	if lg.Tokens[0].KL != 0 || lg.Tokens[2].KL <= 0 {
		t.Errorf("KL of an identical row %v, of a differing row %v", lg.Tokens[0].KL, lg.Tokens[2].KL)
	}
}

// TestOrd32 checks the branch-free ord32 against its definition on random
// and edge bit patterns.
func TestOrd32(t *testing.T) {
	def := func(x float32) int64 {
		u := math.Float32bits(x)
		if u&0x80000000 != 0 {
			return -int64(u & 0x7fffffff)
		}
		return int64(u)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	bits := []uint32{0, 0x80000000, 1, 0x80000001, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000}
	for range 100000 {
		bits = append(bits, rng.Uint32())
	}
	for _, u := range bits {
		x := math.Float32frombits(u)
		if got, want := ord32(x), def(x); got != want {
			t.Fatalf("ord32(%#08x) = %d, want %d", u, got, want)
		}
	}
	for i := 0; i+1 < len(bits); i++ {
		a, b := math.Float32frombits(bits[i]), math.Float32frombits(bits[i+1])
		d := def(a) - def(b)
		if d < 0 {
			d = -d
		}
		if got := ulp32(a, b); got != uint32(d) {
			t.Fatalf("ulp32(%#08x, %#08x) = %d, want %d", bits[i], bits[i+1], got, d)
		}
	}
}
