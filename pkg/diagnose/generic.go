package diagnose

import (
	"fmt"
	"math"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// ---- generic hypotheses ----

// genericHints tests the hypotheses that apply to any op: layerdiff's x is
// the reference transformed by a constant factor, a half swap, a
// transpose, a permute, a shift along the token axis, or f16 rounding.
func genericHints(in *Input, x []float32) []compare.Hint {
	ref := in.Ref
	base := nmseOf(ref, x)
	if !(base > 0) || math.IsInf(base, 1) {
		return nil
	}
	ne := ne4(in.Ne)
	var hs []compare.Hint
	add := func(kind, text string, value, res, baseline float64) {
		hs = append(hs, compare.Hint{Kind: kind, Text: text, Value: compare.Float(value), NMSE: compare.Float(res), Baseline: compare.Float(baseline)})
	}
	if c, res, ok := fitScale(ref, x); ok && explains(res, base, explainMax) {
		if math.Abs(c+1) <= 1e-3 {
			add(HintSignFlip, fmt.Sprintf("layerdiff's output is the reference's negated (least-squares factor %s; residual nmse %s, before %s): a sign flip", fnum(c, 6), fnmse(res), fnmse(base)), c, res, base)
		} else {
			add(HintScale, fmt.Sprintf("layerdiff's output is %s × the reference's (least-squares factor; residual nmse %s, before %s): a constant factor %s", fnum(c, 6), fnmse(res), fnmse(base), fnum(c, 6)), c, res, base)
		}
	}
	if n0 := int(ne[0]); n0 >= 2 && n0%2 == 0 {
		h := n0 / 2
		swapped := func(i int) int {
			if i%n0 < h {
				return i + h
			}
			return i - h
		}
		if res := nmseMapped(ref, x, swapped); explains(res, base, explainMax) {
			add(HintSwappedHalves, fmt.Sprintf("layerdiff's rows have their two halves swapped relative to the reference's (rows of ne[0] = %d; residual nmse %s, before %s): e.g. NEOX pairs read as halves, or a swapped concatenation", n0, fnmse(res), fnmse(base)), 0, res, base)
		}
	}
	if n0, n1 := int(ne[0]), int(ne[1]); n0 > 1 && n1 > 1 {
		shapes := [][2]int{{n0, n1}}
		if n0 != n1 {
			shapes = append(shapes, [2]int{n1, n0})
		}
		for _, s := range shapes {
			if res := nmseMapped(ref, x, transposedIndex(s[0], s[1])); explains(res, base, explainMax) {
				add(HintTransposed, fmt.Sprintf("layerdiff's output holds the reference's {%d, %d} matrices transposed (residual nmse %s, before %s): a layout (ne order) confusion", s[0], s[1], fnmse(res), fnmse(base)), 0, res, base)
				break
			}
		}
	}
	if ne[1] > 1 && ne[2] > 1 {
		shapes := [][3]int64{{ne[0], ne[1], ne[2]}}
		if ne[1] != ne[2] {
			shapes = append(shapes, [3]int64{ne[0], ne[2], ne[1]})
		}
		for _, s := range shapes {
			if res := nmseMapped(ref, x, permutedIndex(s)); explains(res, base, explainMax) {
				add(HintPermuted, fmt.Sprintf("layerdiff's output holds the reference's %s with axes 1 and 2 swapped (laid out as %s; residual nmse %s, before %s): a missing or extra permute", tensor.ShapeString(s[:]), tensor.ShapeString([]int64{s[0], s[2], s[1]}), fnmse(res), fnmse(base)), 0, res, base)
				break
			}
		}
	}
	if h, ok := shiftHint(in, x, ne); ok {
		hs = append(hs, h)
	}
	if h, ok := f16Hint(in, x, base); ok {
		hs = append(hs, h)
	}
	return hs
}

// fitScale fits x ≈ c·ref by least squares and returns c and the residual
// Σ(x − c·ref)²/Σ(c·ref)² over finite pairs.
func fitScale(ref, x []float32) (c, res float64, ok bool) {
	var sxr, srr float64
	for i := range ref {
		a, b := float64(ref[i]), float64(x[i])
		if !finite(a) || !finite(b) {
			continue
		}
		sxr += a * b
		srr += a * a
	}
	if srr == 0 || sxr == 0 {
		return 0, 0, false
	}
	c = sxr / srr
	var sse float64
	for i := range ref {
		a, b := float64(ref[i]), float64(x[i])
		if !finite(a) || !finite(b) {
			continue
		}
		sse += (b - c*a) * (b - c*a)
	}
	return c, sse / (c * c * srr), true
}

// nmseMapped is nmseOf(p, x) for the prediction p[i] = ref[m(i)] (m must
// map [0, len(ref)) into itself), without materializing p.
func nmseMapped(ref, x []float32, m func(int) int) float64 {
	var sse, ssa float64
	for i := range x {
		a, b := float64(ref[m(i)]), float64(x[i])
		if !finite(a) || !finite(b) {
			continue
		}
		sse += (b - a) * (b - a)
		ssa += a * a
	}
	switch {
	case sse == 0:
		return 0
	case ssa == 0:
		return math.Inf(1)
	}
	return sse / ssa
}

// transposedIndex maps an element of the reference's ggml-order matrices of
// n1 rows of n0 values, written transposed as n0 rows of n1 (what --inject
// transpose does), to its source index.
func transposedIndex(n0, n1 int) func(int) int {
	mat := n0 * n1
	return func(i int) int {
		off, j := i/mat*mat, i%mat
		c, r := j/n1, j%n1
		return off + r*n0 + c
	}
}

// permutedIndex maps an element of the reference's {s0, s1, s2, rest} laid
// out as {s0, s2, s1, rest} (ggml_cont of ggml_permute(a, 0, 2, 1, 3)) to
// its source index.
func permutedIndex(s [3]int64) func(int) int {
	n0, n1, n2 := int(s[0]), int(s[1]), int(s[2])
	blk := n0 * n1 * n2
	return func(k int) int {
		off, q := k/blk*blk, k%blk
		d, q := q%n0, q/n0
		j, i := q%n2, q/n2
		return off + (j*n1+i)*n0 + d
	}
}

// shiftHint tests whether layerdiff's token t holds the reference's token
// t−1 (or t+1) along a dimension of the prompt length.
func shiftHint(in *Input, x []float32, ne [4]int64) (compare.Hint, bool) {
	T := int64(in.T)
	if T < 3 {
		return compare.Hint{}, false
	}
	for d := 1; d < 4; d++ {
		if ne[d] != T {
			continue
		}
		inner := int64(1)
		for k := 0; k < d; k++ {
			inner *= ne[k]
		}
		outer := int64(1)
		for k := d + 1; k < 4; k++ {
			outer *= ne[k]
		}
		for _, delta := range []int64{-1, 1} {
			// ours at t against the reference at t+delta, and the
			// reference at t itself, over the same slices of ours
			var sse, ssa, bse, bsa float64
			for o := int64(0); o < outer; o++ {
				for t := int64(0); t < T; t++ {
					s := t + delta
					if s < 0 || s >= T {
						continue
					}
					xo := (o*T + t) * inner
					ro := (o*T + s) * inner
					for i := int64(0); i < inner; i++ {
						xv, rv, bv := float64(x[xo+i]), float64(in.Ref[ro+i]), float64(in.Ref[xo+i])
						if !finite(xv) || !finite(rv) || !finite(bv) {
							continue
						}
						sse += (xv - rv) * (xv - rv)
						ssa += rv * rv
						bse += (xv - bv) * (xv - bv)
						bsa += bv * bv
					}
				}
			}
			if ssa == 0 || bsa == 0 {
				continue
			}
			res, base := sse/ssa, bse/bsa
			if !explains(res, base, explainMax) {
				continue
			}
			rel, lo, hi := "t−1", int64(1), T-1
			if delta > 0 {
				rel, lo, hi = "t+1", 0, T-2
			}
			text := fmt.Sprintf("layerdiff's token t holds the reference's token %s (tokens %d..%d along ne[%d]; residual nmse %s, before %s): an off-by-one position", rel, lo, hi, d, fnmse(res), fnmse(base))
			return compare.Hint{Kind: HintPositionShift, Text: text, Value: compare.Float(delta), NMSE: compare.Float(res), Baseline: compare.Float(base)}, true
		}
	}
	return compare.Hint{}, false
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// f16Frac is the fraction of the finite non-zero values of a that float16
// represents exactly (NaN when there are none).
func f16Frac(a []float32) float64 {
	n, exact := 0, 0
	for _, v := range a {
		if v == 0 || !finite(float64(v)) {
			continue
		}
		n++
		if roundF16(v) == v {
			exact++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return float64(exact) / float64(n)
}

func roundF16(v float32) float32 { return quant.F16ToF32(quant.F32ToF16(v)) }

// nmseRounded is nmseOf(a, b) with the side named by roundA (a) or not (b)
// rounded to f16 first.
func nmseRounded(a, b []float32, roundA bool) float64 {
	var sse, ssa float64
	for i := range a {
		x, y := a[i], b[i]
		if roundA {
			x = roundF16(x)
		} else {
			y = roundF16(y)
		}
		xa, yb := float64(x), float64(y)
		if !finite(xa) || !finite(yb) {
			continue
		}
		sse += (yb - xa) * (yb - xa)
		ssa += xa * xa
	}
	switch {
	case sse == 0:
		return 0
	case ssa == 0:
		return math.Inf(1)
	}
	return sse / ssa
}

// readsKV reports nodes that are, or read, the KV cache.
func readsKV(name, op string) bool {
	base, _ := tensor.SplitName(name)
	switch {
	case strings.HasPrefix(base, "cache_k"), strings.HasPrefix(base, "cache_v"), op == "FLASH_ATTN_EXT":
		return true
	}
	switch base {
	case "kq", "kq_soft_max", "kqv", "kqv_out", "__fattn__", "k", "v":
		return true
	}
	return false
}

// f16Hint tests whether one side holds f16 values (every finite non-zero
// value exactly representable) and the other side rounded to f16
// reproduces it.
func f16Hint(in *Input, x []float32, base float64) (compare.Hint, bool) {
	fr, fx := f16Frac(in.Ref), f16Frac(x)
	if math.IsNaN(fr) || math.IsNaN(fx) {
		return compare.Hint{}, false
	}
	kv := readsKV(in.Name, in.Op)
	switch {
	case fr >= 0.999 && fx < 0.5:
		res := nmseRounded(in.Ref, x, false)
		if !explains(res, base, explainMax) {
			return compare.Hint{}, false
		}
		text := fmt.Sprintf("the reference's values are f16 (%.1f%% exactly representable) and layerdiff's are not (%.1f%%); layerdiff's rounded to f16 reproduce the reference (residual nmse %s, before %s): f16 rounding", 100*fr, 100*fx, fnmse(res), fnmse(base))
		if kv {
			text += " of the KV cache: the reference stores K and V as f16, layerdiff as f32 (run with --kv-type f16)"
		}
		return compare.Hint{Kind: HintF16Rounding, Text: text, Value: 1, NMSE: compare.Float(res), Baseline: compare.Float(base)}, true
	case fx >= 0.999 && fr < 0.5:
		res := nmseRounded(in.Ref, x, true)
		if !explains(res, base, explainMax) {
			return compare.Hint{}, false
		}
		text := fmt.Sprintf("layerdiff's values are f16 (%.1f%% exactly representable) and the reference's are not (%.1f%%); the reference rounded to f16 reproduces layerdiff's (residual nmse %s, before %s): f16 rounding", 100*fx, 100*fr, fnmse(res), fnmse(base))
		if kv {
			text += " of the KV cache: the reference stores K and V as f32, layerdiff as f16 (run with --kv-type f32)"
		}
		return compare.Hint{Kind: HintF16Rounding, Text: text, Value: -1, NMSE: compare.Float(res), Baseline: compare.Float(base)}, true
	}
	return compare.Hint{}, false
}
