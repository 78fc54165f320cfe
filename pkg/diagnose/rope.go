package diagnose

import (
	"fmt"
	"math"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
)

// ---- ROPE ----

// ropeHyp is one way of rotating: ggml's rope with ext_factor 0, positions
// t+offset for token t.
type ropeHyp struct {
	mode   int
	base   float64 // freq_base
	scale  float64 // freq_scale
	offset int
	ff     []float32 // frequency factors (rope_freqs.weight), nil for none
	fitted bool      // base and scale were fitted to the rotation angles
}

func modeName(m int) string {
	if m == forward.RopeNeox {
		return "NEOX rotation (pairs i, i+n/2)"
	}
	return "NORM rotation (pairs 2i, 2i+1)"
}

func modeShort(m int) string {
	if m == forward.RopeNeox {
		return "NEOX"
	}
	return "NORM"
}

func relDiff(a, b float64) float64 { return math.Abs(a-b) / math.Max(math.Abs(b), 1e-300) }

// ropePair returns the indices of pair i of n_dims rotated dimensions.
func ropePair(mode, i, nDims int) (int, int) {
	if mode == forward.RopeNeox {
		return i, i + nDims/2
	}
	return 2 * i, 2*i + 1
}

// ropePredict rotates x ({head_dim, heads, T, ...}) under h in float64:
// theta_i = scale·(t+offset)·base^(−2i/n_dims)/ff[i], outputs multiplied by
// mscale (attn_factor), dimensions past n_dims copied (ggml_rope_ext with
// ext_factor 0).
func ropePredict(x []float32, ne [4]int64, nDims int, mscale float64, h ropeHyp) []float64 {
	hd, heads, T := int(ne[0]), int(ne[1]), int(ne[2])
	out := make([]float64, len(x))
	half := nDims / 2
	freq := make([]float64, half)
	for i := range freq {
		freq[i] = h.scale * math.Pow(h.base, -2*float64(i)/float64(nDims))
		if h.ff != nil && i < len(h.ff) && h.ff[i] != 0 {
			freq[i] /= float64(h.ff[i])
		}
	}
	sin, cos := make([]float64, half), make([]float64, half)
	for i3 := 0; i3 < int(ne[3]); i3++ {
		for t := 0; t < T; t++ {
			p := float64(t + h.offset)
			for i := range freq {
				sin[i], cos[i] = math.Sincos(p * freq[i])
			}
			for i1 := 0; i1 < heads; i1++ {
				off := ((i3*T+t)*heads + i1) * hd
				for j := nDims; j < hd; j++ {
					out[off+j] = float64(x[off+j])
				}
				for i := 0; i < half; i++ {
					j0, j1 := ropePair(h.mode, i, nDims)
					x0, x1 := float64(x[off+j0]), float64(x[off+j1])
					out[off+j0] = (x0*cos[i] - x1*sin[i]) * mscale
					out[off+j1] = (x0*sin[i] + x1*cos[i]) * mscale
				}
			}
		}
	}
	return out
}

// ropeFit fits the frequency base and scale of the rotation y of x under
// mode, positions 0..T−1: per pair i it measures the angle per position
// omega_i (the argument of Σ conj(x)·y over heads, unwrapped along the
// positions and fitted through the origin), then fits
// log(omega_i·ff[i]) = log(scale) − (2i/n_dims)·log(base) by least squares
// weighted by the measured angle at the last position.
func ropeFit(x, y []float32, ne [4]int64, nDims, mode int, ff []float32) (base, scale float64, ok bool) {
	hd, heads, T := int(ne[0]), int(ne[1]), int(ne[2])
	half := nDims / 2
	if T < 2 || half < 2 {
		return 0, 0, false
	}
	re := make([]float64, T*half)
	im := make([]float64, T*half)
	for i3 := 0; i3 < int(ne[3]); i3++ {
		for t := 0; t < T; t++ {
			for i1 := 0; i1 < heads; i1++ {
				off := ((i3*T+t)*heads + i1) * hd
				for i := 0; i < half; i++ {
					j0, j1 := ropePair(mode, i, nDims)
					x0, x1 := float64(x[off+j0]), float64(x[off+j1])
					y0, y1 := float64(y[off+j0]), float64(y[off+j1])
					re[t*half+i] += x0*y0 + x1*y1
					im[t*half+i] += x0*y1 - x1*y0
				}
			}
		}
	}
	var sw, su, sl, suu, sul float64
	n := 0
	for i := 0; i < half; i++ {
		if re[half+i] == 0 && im[half+i] == 0 {
			continue
		}
		w := math.Atan2(im[half+i], re[half+i])
		num, den := w, 1.0
		for t := 2; t < T; t++ {
			r, m := re[t*half+i], im[t*half+i]
			if r == 0 && m == 0 {
				continue
			}
			phi := math.Atan2(m, r)
			k := math.Round((float64(t)*w - phi) / (2 * math.Pi))
			phi += 2 * math.Pi * k
			num += float64(t) * phi
			den += float64(t * t)
			w = num / den
		}
		span := w * float64(T-1)
		if !(w > 0) || span < 1e-6 {
			continue
		}
		f := 1.0
		if ff != nil && i < len(ff) && ff[i] > 0 {
			f = float64(ff[i])
		}
		u, l, wt := 2*float64(i)/float64(nDims), math.Log(w*f), span*span
		sw += wt
		su += wt * u
		sl += wt * l
		suu += wt * u * u
		sul += wt * u * l
		n++
	}
	if n < 2 {
		return 0, 0, false
	}
	d := sw*suu - su*su
	if d == 0 {
		return 0, 0, false
	}
	slope := (sw*sul - su*sl) / d
	icept := (sl - slope*su) / sw
	base, scale = math.Exp(-slope), math.Exp(icept)
	if !finite(base) || !finite(scale) || base <= 1 || scale <= 0 {
		return 0, 0, false
	}
	return base, scale, true
}

// ropeSide is what one side's rotation was found to be.
type ropeSide struct {
	h        ropeHyp
	res      float64 // nmse of h's prediction against the side
	modelRes float64 // nmse of the model's rotation against the side
	ok       bool
}

// fitRopeSide finds the rotation that reproduces y from x: the best of
// the grid (NORM/NEOX × positions t, t+1, t−1 × with/without frequency
// factors, at the model's base and scale) when it matches, else a base and
// scale fitted to the rotation angles.
func fitRopeSide(x, y []float32, ne [4]int64, nDims int, mscale float64, model ropeHyp, grid []ropeHyp) ropeSide {
	s := ropeSide{res: math.Inf(1)}
	s.modelRes = nmseOf(ropePredict(x, ne, nDims, mscale, model), y)
	for _, h := range grid {
		r := nmseOf(ropePredict(x, ne, nDims, mscale, h), y)
		if r < s.res {
			s.h, s.res = h, r
		}
	}
	if s.res <= ropeMatchMax && (sameRope(s.h, model) || s.res*explainRatio <= s.modelRes) {
		s.ok = true
		return s
	}
	best := ropeSide{res: math.Inf(1), modelRes: s.modelRes}
	for _, mode := range []int{model.mode, otherMode(model.mode)} {
		b, sc, ok := ropeFit(x, y, ne, nDims, mode, model.ff)
		if !ok {
			continue
		}
		h := ropeHyp{mode: mode, base: b, scale: sc, ff: model.ff, fitted: true}
		if r := nmseOf(ropePredict(x, ne, nDims, mscale, h), y); r < best.res {
			best.h, best.res = h, r
		}
	}
	if best.res <= ropeMatchMax && best.res*explainRatio <= best.modelRes {
		best.ok = true
		return best
	}
	return s
}

func otherMode(m int) int {
	if m == forward.RopeNeox {
		return forward.RopeNorm
	}
	return forward.RopeNeox
}

// sameRope reports whether two rotations agree in every component.
func sameRope(a, b ropeHyp) bool {
	return a.mode == b.mode && a.offset == b.offset && (a.ff == nil) == (b.ff == nil) &&
		relDiff(a.base, b.base) <= 1e-3 && relDiff(a.scale, b.scale) <= 1e-3
}

// ropeHints recomputes the ROPE from the reference's input under each
// hypothesis and names the components (mode, base, frequency scale,
// positions, frequency factors) in which the rotation the reference
// applied differs from layerdiff's (or, when layerdiff's matches none,
// from the model's).
func ropeHints(in *Input, x []float32) []compare.Hint {
	hp := in.Hparams
	if hp == nil || len(in.Inputs) < 1 || in.Inputs[0] == nil || len(in.Inputs[0].Data) != len(in.Ref) {
		return nil
	}
	if hp.RopeExtFactor != 0 {
		// the hypotheses rotate without YaRN's ramp: they would describe
		// a YaRN model's correct rotation as a wrong one
		return nil
	}
	ne := ne4(in.Ne)
	nDims := hp.NRot
	if nDims <= 0 || nDims%2 != 0 || int64(nDims) > ne[0] {
		return nil
	}
	mscale := float64(hp.AttnFactor)
	if mscale == 0 {
		mscale = 1
	}
	src := in.Inputs[0].Data
	mh := ropeHyp{mode: hp.RopeType, base: float64(hp.RopeBase), scale: float64(hp.RopeScale), ff: hp.RopeFreqs}
	if mh.scale == 0 {
		mh.scale = 1
	}
	var grid []ropeHyp
	ffs := [][]float32{hp.RopeFreqs}
	if hp.RopeFreqs != nil {
		ffs = append(ffs, nil)
	}
	for _, mode := range []int{forward.RopeNorm, forward.RopeNeox} {
		for _, off := range []int{0, 1, -1} {
			for _, ff := range ffs {
				grid = append(grid, ropeHyp{mode: mode, base: mh.base, scale: mh.scale, offset: off, ff: ff})
			}
		}
	}
	ref := fitRopeSide(src, in.Ref, ne, nDims, mscale, mh, grid)
	var ours ropeSide
	if x != nil {
		ours = fitRopeSide(src, x, ne, nDims, mscale, mh, grid)
	}
	// a is the side whose rotation is described, b what it is compared
	// with: layerdiff's rotation, or the model's when layerdiff's (or the
	// reference's) matches none
	type party struct {
		name  string
		s     ropeSide
		model bool
	}
	var a, b party
	note := ""
	switch {
	case ref.ok && ours.ok:
		if sameRope(ref.h, ours.h) {
			return nil
		}
		a, b = party{name: "the reference's", s: ref}, party{name: "layerdiff's", s: ours}
	case ref.ok && !sameRope(ref.h, mh):
		a, b = party{name: "the reference's", s: ref}, party{name: "the model's", s: ropeSide{h: mh}, model: true}
		if x != nil {
			note = "; layerdiff's output matches none of the tested rotations"
		}
	case ours.ok && !sameRope(ours.h, mh):
		a, b = party{name: "layerdiff's", s: ours}, party{name: "the model's", s: ropeSide{h: mh}, model: true}
		note = "; the reference's output matches none of the tested rotations"
	default:
		return nil
	}
	// dev is the side that departs from the model's rotation
	dev := a
	if !b.model && sameRope(a.s.h, mh) {
		dev = b
	}
	resNote := fmt.Sprintf("%s: nmse %s", strings.TrimSuffix(a.name, "'s"), fnmse(a.s.res))
	if !b.model {
		resNote += fmt.Sprintf(", %s: nmse %s", strings.TrimSuffix(b.name, "'s"), fnmse(b.s.res))
	}
	resNote += fmt.Sprintf("; %s with the model's parameters: nmse %s", strings.TrimSuffix(dev.name, "'s"), fnmse(dev.s.modelRes))
	// vs phrases b's value v after a's
	vs := func(verb, v string) string {
		if b.model {
			return ", not the model's " + v
		}
		return " and " + b.name + " " + verb + " " + v
	}
	modelSays := func(v string) string {
		if b.model {
			return ""
		}
		return "; the model says " + v
	}
	var hs []compare.Hint
	add := func(kind, text string, av, bv, mv float64) {
		h := compare.Hint{Kind: kind, Text: text + note, Value: compare.Float(av), Model: fptr(mv), NMSE: compare.Float(dev.s.res), Baseline: compare.Float(dev.s.modelRes)}
		switch {
		case a.name == "layerdiff's":
			h.Ours = fptr(av)
		case !b.model:
			h.Ours = fptr(bv)
		}
		hs = append(hs, h)
	}
	ah, bh := a.s.h, b.s.h
	if ah.mode != bh.mode {
		implies := ""
		if !b.model {
			implies = fmt.Sprintf("; the model (%s) implies %s", hp.Arch, modeShort(mh.mode))
		}
		add(HintRopeMode, fmt.Sprintf("RoPE mode: %s output matches %s%s (%s)%s",
			a.name, modeName(ah.mode), vs("matches", modeName(bh.mode)), resNote, implies),
			float64(ah.mode), float64(bh.mode), float64(mh.mode))
	}
	if relDiff(ah.base, bh.base) > 1e-3 {
		add(HintRopeBase, fmt.Sprintf("RoPE base: %s rotation angles fit base %s%s (%s)%s",
			a.name, fnum(ah.base, 5), vs("fit", fnum(bh.base, 5)), resNote, modelSays(fnum(mh.base, 5))),
			ah.base, bh.base, mh.base)
	}
	if relDiff(ah.scale, bh.scale) > 1e-3 {
		add(HintRopeFreqScale, fmt.Sprintf("RoPE frequency scale: %s rotation angles fit freq_scale %s%s (%s)%s",
			a.name, fnum(ah.scale, 4), vs("fit", fnum(bh.scale, 4)), resNote, modelSays(fnum(mh.scale, 4))),
			ah.scale, bh.scale, mh.scale)
	}
	if ah.offset != bh.offset {
		add(HintRopePosition, fmt.Sprintf("RoPE positions: %s rotation turns token t by position %s%s (%s): an off-by-one position",
			a.name, posName(ah.offset), vs("by", posName(bh.offset)), resNote),
			float64(ah.offset), float64(bh.offset), 0)
	}
	if (ah.ff == nil) != (bh.ff == nil) {
		with := func(h ropeHyp) string {
			if h.ff == nil {
				return "without rope_freqs.weight"
			}
			return "with rope_freqs.weight"
		}
		add(HintRopeFreqFactors, fmt.Sprintf("RoPE frequency factors: %s output matches the rotation %s%s (%s)",
			a.name, with(ah), vs("matches the rotation", with(bh)), resNote),
			boolf(ah.ff != nil), boolf(bh.ff != nil), boolf(mh.ff != nil))
	}
	return hs
}

func posName(off int) string {
	switch {
	case off > 0:
		return fmt.Sprintf("t+%d", off)
	case off < 0:
		return fmt.Sprintf("t−%d", -off)
	}
	return "t"
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
