package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Diagnosis hints: once the blamer has found the op that differs, each hint
// tests one hypothesis about why (a sign flip, a RoPE mode, an RMS epsilon,
// an off-by-one position) by predicting one side from the other, or by
// recomputing the op from the reference's inputs under the hypothesis, and
// measuring the residual. A hint is reported only when its hypothesis
// explains the difference: the residual NMSE is at most 1/explainRatio of
// the NMSE it replaces and at most explainMax.

// Hint kinds (compare.Hint.Kind).
const (
	HintSignFlip         = "sign-flip"         // layerdiff ≈ −reference
	HintScale            = "scale"             // layerdiff ≈ c·reference
	HintSwappedHalves    = "swapped-halves"    // the two halves of every row (ne[0]) swapped
	HintTransposed       = "transposed"        // the ne[0]×ne[1] matrices transposed
	HintPermuted         = "permuted"          // axes 1 and 2 swapped
	HintPositionShift    = "position-shift"    // token t holds the other side's token t±1
	HintF16Rounding      = "f16-rounding"      // one side rounded to f16 (KV cache type)
	HintRopeMode         = "rope-mode"         // NORM vs NEOX rotation
	HintRopeBase         = "rope-base"         // RoPE frequency base
	HintRopeFreqScale    = "rope-freq-scale"   // RoPE frequency scale (linear scaling)
	HintRopePosition     = "rope-position"     // RoPE positions off by one
	HintRopeFreqFactors  = "rope-freq-factors" // rope_freqs.weight applied on one side only
	HintRMSEps           = "rms-eps"           // RMS norm epsilon
	HintWeightTransposed = "weight-transposed" // a square weight used transposed
	HintBOS              = "bos"               // a BOS token on one side only
	HintTokenShift       = "token-shift"       // token ids shifted by one (not a BOS)
	HintTokenMismatch    = "token-mismatch"    // token ids differ at some positions
)

const (
	// explainRatio and explainMax decide when a hypothesis explains a
	// difference: it must leave at most 1/explainRatio of the NMSE it
	// replaces, and at most explainMax.
	explainRatio = 100
	explainMax   = 1e-4
	// matmulExplainMax is explainMax for MUL_MAT recomputations, which
	// differ from ggml's by its activation quantization (nmse ~1e-5).
	matmulExplainMax = 1e-3
	// ropeMatchMax is the largest NMSE at which a recomputed RoPE counts as
	// matching: ggml rotates with float sin/cos and a float theta cache.
	ropeMatchMax = 1e-6
	// rowMatchMax is the largest NMSE at which an embedding row counts as a
	// token's row.
	rowMatchMax = 1e-6
	// maxMatmulDim bounds the square weights the transposed-weight test
	// recomputes (it streams the weight once, for at most four tokens).
	maxMatmulDim = 1 << 15
	// maxVocabScan bounds the elements of the token embedding scanned to
	// name the reference's token ids (vocabulary × embedding length).
	maxVocabScan = 1 << 28
)

// Weights gives a model's weight tensors, dequantized to float32 one row
// (ne[0] values) at a time.
type Weights interface {
	// Shape returns a weight's ggml shape; false when the model has none
	// of that name.
	Shape(name string) ([]int64, bool)
	// Row dequantizes row row (the ne[0] values at index row of ne[1]) of
	// the named weight into dst, which holds ne[0] values.
	Row(name string, row int, dst []float32) error
}

// HintInput is what Hints knows about the node the blamer holds
// responsible. Name, Ne and Ref are required; every test runs when its
// inputs are present and is skipped otherwise.
type HintInput struct {
	Name string    // llama.cpp node name, e.g. "Qcur-0"
	Op   string    // ggml op, e.g. "ROPE"; "" when unknown
	Ne   []int64   // the reference's shape, ggml order
	Ref  []float32 // the reference's output
	// Isolated is layerdiff's output computed from the reference's inputs
	// (the isolation run); nil when the node was not isolated.
	Isolated []float32
	// Ours is layerdiff's output in the normal run (its shape may differ
	// from Ne); nil when unknown.
	Ours *tensor.Tensor
	// Inputs are the reference's source tensors in ggml src order and
	// InputNames their names; an entry of Inputs is nil when the reference
	// does not hold that tensor (model weights, positions).
	Inputs     []*tensor.Tensor
	InputNames []string
	Hparams    *forward.Hparams // nil when unknown
	Weights    Weights          // the model's weights; nil when unknown
	// Tokens are the token ids layerdiff evaluated, RefTokens the
	// reference's when it records them.
	Tokens, RefTokens []int32
	BOS               int32 // the model's BOS id, −1 when unknown
	// T is the prompt length of the reference; 0 means len(Tokens).
	T int
}

// Hints tests the hypotheses that apply to the node and returns those that
// explain the difference between layerdiff's output and the reference's,
// op-specific ones first (ROPE: mode, base, frequency scale and factors,
// positions; RMS_NORM: epsilon; MUL_MAT: a transposed square weight;
// GET_ROWS: BOS and token ids), then, when none explains it, the generic
// ones (sign flip, constant factor, swapped halves, transposed or permuted
// layout, off-by-one position, f16 rounding). layerdiff's side is Isolated
// when it has the reference's shape, else Ours. Hints never fails: a test
// whose inputs are missing or malformed is skipped.
func Hints(in HintInput) []compare.Hint {
	if len(in.Ref) == 0 || len(in.Ne) == 0 || len(in.Ne) > 4 || tensor.Numel(in.Ne) != int64(len(in.Ref)) {
		return nil
	}
	for _, d := range in.Ne {
		if d <= 0 {
			return nil
		}
	}
	if in.T <= 0 {
		in.T = len(in.Tokens)
	}
	x := in.Isolated
	if len(x) != len(in.Ref) {
		x = nil
		if in.Ours != nil && len(in.Ours.Data) == len(in.Ref) {
			x = in.Ours.Data
		}
	}
	base, _ := tensor.SplitName(in.Name)
	var hs []compare.Hint
	switch {
	case in.Op == "ROPE":
		hs = ropeHints(&in, x)
	case in.Op == "RMS_NORM":
		hs = rmsHints(&in, x)
	case in.Op == "MUL_MAT":
		hs = matmulHints(&in, x)
	case in.Op == "GET_ROWS" || base == "inp_embd":
		hs = tokenHints(&in)
	}
	if len(hs) == 0 && x != nil {
		hs = genericHints(&in, x)
	}
	return hs
}

// explains reports whether a hypothesis leaving residual NMSE res
// explains a difference of NMSE base.
func explains(res, base, max float64) bool {
	return !math.IsNaN(res) && res <= max && res*explainRatio <= base
}

// nmseOf is Σ(b−a)²/Σa² over the pairs where both are finite, in float64:
// 0 when a and b agree, +Inf when a has no energy and b differs, NaN when
// the lengths differ or no pair is finite.
func nmseOf[A, B float32 | float64](a []A, b []B) float64 {
	if len(a) != len(b) {
		return math.NaN()
	}
	var sse, ssa float64
	n := 0
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
			continue
		}
		n++
		sse += (y - x) * (y - x)
		ssa += x * x
	}
	switch {
	case n == 0:
		return math.NaN()
	case sse == 0:
		return 0
	case ssa == 0:
		return math.Inf(1)
	}
	return sse / ssa
}

// fnum formats a fitted quantity with digits significant digits, without
// an exponent between 1e-4 and 1e12 ("20000", not "2e+04").
func fnum(x float64, digits int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return compare.FormatFloat(x, digits)
	}
	v, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', digits, 64), 64)
	if err != nil {
		return compare.FormatFloat(x, digits)
	}
	if a := math.Abs(v); a == 0 || (a >= 1e-4 && a < 1e12) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// fnmse formats an NMSE as the blame evidence does.
func fnmse(x float64) string { return compare.FormatFloat(x, 3) }

func fptr(x float64) *compare.Float {
	f := compare.Float(x)
	return &f
}

// ne4 pads a ggml shape to four dimensions.
func ne4(ne []int64) [4]int64 {
	r := [4]int64{1, 1, 1, 1}
	copy(r[:], ne)
	return r
}

// ---- generic hypotheses ----

// genericHints tests the hypotheses that apply to any op: layerdiff's x is
// the reference transformed by a constant factor, a half swap, a
// transpose, a permute, a shift along the token axis, or f16 rounding.
func genericHints(in *HintInput, x []float32) []compare.Hint {
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
func shiftHint(in *HintInput, x []float32, ne [4]int64) (compare.Hint, bool) {
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

func roundF16(v float32) float32 { return model.F16ToF32(model.F32ToF16(v)) }

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
func f16Hint(in *HintInput, x []float32, base float64) (compare.Hint, bool) {
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

// ---- RMS_NORM ----

// fitRMSEps estimates the epsilon of y = x/sqrt(mean(x²)+eps) row by row
// (rows of n values): eps = Σx²/Σy² − Σx²/n, the median over rows.
func fitRMSEps(x, y []float32, n int) (float64, bool) {
	if n <= 0 || len(x) != len(y) || len(x)%n != 0 {
		return 0, false
	}
	var eps []float64
	for r := 0; r+n <= len(x); r += n {
		var sx, sy float64
		for i := r; i < r+n; i++ {
			a, b := float64(x[i]), float64(y[i])
			sx += a * a
			sy += b * b
		}
		if sx == 0 || sy == 0 || !finite(sx) || !finite(sy) {
			continue
		}
		eps = append(eps, sx/sy-sx/float64(n))
	}
	if len(eps) == 0 {
		return 0, false
	}
	slices.Sort(eps)
	m := eps[len(eps)/2]
	if len(eps)%2 == 0 {
		m = (eps[len(eps)/2-1] + m) / 2
	}
	return m, true
}

// rmsPredict computes x/sqrt(mean(x²)+eps) per row of n values in float64;
// nil when a row's mean(x²)+eps is not positive.
func rmsPredict(x []float32, n int, eps float64) []float64 {
	out := make([]float64, len(x))
	for r := 0; r+n <= len(x); r += n {
		var sx float64
		for i := r; i < r+n; i++ {
			sx += float64(x[i]) * float64(x[i])
		}
		d := sx/float64(n) + eps
		if !(d > 0) {
			if sx == 0 {
				continue
			}
			return nil
		}
		s := 1 / math.Sqrt(d)
		for i := r; i < r+n; i++ {
			out[i] = float64(x[i]) * s
		}
	}
	return out
}

// rmsHints estimates the epsilon each side's RMS_NORM used from the
// reference's input and reports it when the reference's is not the one
// layerdiff used (or, without layerdiff's output, not the model's).
func rmsHints(in *HintInput, x []float32) []compare.Hint {
	if len(in.Inputs) < 1 || in.Inputs[0] == nil || len(in.Inputs[0].Data) != len(in.Ref) {
		return nil
	}
	src, n := in.Inputs[0].Data, int(in.Ne[0])
	eR, ok := fitRMSEps(src, in.Ref, n)
	if !ok {
		return nil
	}
	modelEps := math.NaN()
	if in.Hparams != nil {
		modelEps = float64(in.Hparams.NormRMSEps)
	}
	pR := rmsPredict(src, n, eR)
	if pR == nil {
		return nil
	}
	// layerdiff's fitted eps counts only when it reproduces layerdiff's
	// output better than the reference's eps does
	eO, okO := fitRMSEps(src, x, n)
	if okO {
		pO := rmsPredict(src, n, eO)
		okO = pO != nil && explains(nmseOf(pO, x), nmseOf(pR, x), explainMax)
	}
	alt, altName := modelEps, "the model's"
	if okO {
		alt, altName = eO, "layerdiff's fit"
	}
	if math.IsNaN(alt) {
		return nil
	}
	pA := rmsPredict(src, n, alt)
	res := nmseOf(pR, in.Ref)
	base := math.Inf(1)
	if pA != nil {
		base = nmseOf(pA, in.Ref)
	}
	if !explains(res, base, explainMax) {
		return nil
	}
	h := compare.Hint{Kind: HintRMSEps, Value: compare.Float(eR), NMSE: compare.Float(res), Baseline: compare.Float(base)}
	text := fmt.Sprintf("RMS norm epsilon: the reference's output fits eps %s (Σx²/Σy² − mean(x²) per row, median of %d rows; recomputed with it: nmse %s, with %s %s: %s)", fnum(eR, 3), len(src)/n, fnmse(res), altName, fnum(alt, 3), fnmse(base))
	if okO {
		h.Ours = fptr(eO)
		text += fmt.Sprintf("; layerdiff's fits %s", fnum(eO, 3))
	}
	if !math.IsNaN(modelEps) {
		h.Model = fptr(modelEps)
		text += fmt.Sprintf("; the model says %s", fnum(modelEps, 3))
	}
	h.Text = text
	return []compare.Hint{h}
}

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
func ropeHints(in *HintInput, x []float32) []compare.Hint {
	hp := in.Hparams
	if hp == nil || len(in.Inputs) < 1 || in.Inputs[0] == nil || len(in.Inputs[0].Data) != len(in.Ref) {
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

// ---- MUL_MAT ----

// matmulHints recomputes a MUL_MAT with a square model weight W from the
// reference's activation as W·x and Wᵀ·x (for at most four tokens) and
// reports which side matches the transposed weight.
func matmulHints(in *HintInput, x []float32) []compare.Hint {
	if in.Weights == nil || len(in.InputNames) < 2 || len(in.Inputs) < 2 || in.Inputs[1] == nil {
		return nil
	}
	wname := in.InputNames[0]
	wne, ok := in.Weights.Shape(wname)
	if !ok || len(wne) < 2 || tensor.Numel(wne) != wne[0]*wne[1] {
		return nil
	}
	k, n := wne[0], wne[1]
	if k != n || k <= 1 || k > maxMatmulDim || in.Ne[0] != n {
		return nil
	}
	act := in.Inputs[1].Data
	if int64(len(act))%k != 0 {
		return nil
	}
	cols := int64(len(act)) / k
	if cols*n != int64(len(in.Ref)) {
		return nil
	}
	use := min(cols, 4)
	y1 := make([]float64, use*n) // W·x
	y2 := make([]float64, use*n) // Wᵀ·x
	row := make([]float32, k)
	for r := int64(0); r < n; r++ {
		if err := in.Weights.Row(wname, int(r), row); err != nil {
			return nil
		}
		for t := int64(0); t < use; t++ {
			xt := act[t*k : (t+1)*k]
			var s float64
			for c, w := range row {
				s += float64(w) * float64(xt[c])
			}
			y1[t*n+r] = s
			xr := float64(xt[r])
			yt := y2[t*n : (t+1)*n]
			for c, w := range row {
				yt[c] += float64(w) * xr
			}
		}
	}
	refSub := in.Ref[:use*n]
	rR1, rR2 := nmseOf(y1, refSub), nmseOf(y2, refSub)
	var rX1, rX2 float64
	if x != nil {
		rX1, rX2 = nmseOf(y1, x[:use*n]), nmseOf(y2, x[:use*n])
	}
	var text string
	var res, base float64
	switch {
	case x != nil && explains(rX2, rX1, matmulExplainMax) && explains(rR1, rR2, matmulExplainMax):
		text = fmt.Sprintf("layerdiff's output matches the transposed weight: Wᵀ·x from the reference's input gives nmse %s (W·x: %s) while the reference's matches W·x (nmse %s), W = %s {%d, %d}, %d tokens: layerdiff reads the square weight with its ne order swapped", fnmse(rX2), fnmse(rX1), fnmse(rR1), wname, k, n, use)
		res, base = rX2, rX1
	case explains(rR2, rR1, matmulExplainMax) && (x == nil || explains(rX1, rX2, matmulExplainMax)):
		text = fmt.Sprintf("the reference's output matches the transposed weight: Wᵀ·x from its input gives nmse %s (W·x: %s), W = %s {%d, %d}, %d tokens: the model file holds the transpose of the weight the reference used", fnmse(rR2), fnmse(rR1), wname, k, n, use)
		if x != nil {
			text += fmt.Sprintf(" (layerdiff's matches W·x: nmse %s)", fnmse(rX1))
		}
		res, base = rR2, rR1
	default:
		return nil
	}
	return []compare.Hint{{Kind: HintWeightTransposed, Text: text, NMSE: compare.Float(res), Baseline: compare.Float(base)}}
}

// ---- GET_ROWS: tokens ----

// tokenHints compares the reference's embedding rows with the model's
// embeddings of layerdiff's token ids: all rows one position later (a BOS
// or other extra token in front on one side) or some positions differing
// (token-id mismatch, naming the reference's ids when it can find them).
func tokenHints(in *HintInput) []compare.Hint {
	if in.Weights == nil || len(in.Tokens) == 0 {
		return nil
	}
	wname := "token_embd.weight"
	if len(in.InputNames) > 0 && strings.HasSuffix(in.InputNames[0], ".weight") {
		wname = in.InputNames[0]
	}
	wne, ok := in.Weights.Shape(wname)
	if !ok || len(wne) < 2 || wne[0] != in.Ne[0] || wne[1] <= 0 {
		return nil
	}
	n, nv := int(wne[0]), wne[1]
	o := in.Tokens
	for _, id := range o {
		if id < 0 || int64(id) >= nv {
			return nil
		}
	}
	Tr, To := len(in.Ref)/n, len(o)
	emb := map[int32][]float32{}
	embRow := func(id int32) []float32 {
		if id < 0 || int64(id) >= nv {
			return nil
		}
		if r, ok := emb[id]; ok {
			return r
		}
		r := make([]float32, n)
		if err := in.Weights.Row(wname, int(id), r); err != nil {
			r = nil
		}
		emb[id] = r
		return r
	}
	refRow := func(t int) []float32 { return in.Ref[t*n : (t+1)*n] }
	rowRes := func(t int, id int32) float64 {
		e := embRow(id)
		if e == nil {
			return math.NaN()
		}
		return nmseOf(e, refRow(t))
	}
	// match counts reference rows t that are the embedding of layerdiff's
	// token t+delta, with the mean residual of the matches and the mean
	// nmse of the same rows against layerdiff's token t.
	type shiftRes struct {
		matched, total int
		res, base      float64
		miss           []int
	}
	shift := func(delta int) shiftRes {
		var s shiftRes
		for t := 0; t < Tr; t++ {
			u := t + delta
			if u < 0 || u >= To {
				continue
			}
			s.total++
			r := rowRes(t, o[u])
			if r <= rowMatchMax {
				s.matched++
				s.res += r
			} else {
				s.miss = append(s.miss, t)
			}
			if t < To {
				s.base += rowRes(t, o[t])
			}
		}
		if s.matched > 0 {
			s.res /= float64(s.matched)
		}
		if s.total > 0 {
			s.base /= float64(s.total)
		}
		return s
	}
	s0 := shift(0)
	if s0.total > 0 && s0.matched == s0.total {
		return nil
	}
	bos := in.BOS
	for _, delta := range []int{-1, 1} {
		s := shift(delta)
		if s.total < 1 || s.matched != s.total || (s.total < 2 && Tr == To) {
			continue
		}
		h := compare.Hint{Value: compare.Float(-delta), NMSE: compare.Float(s.res), Baseline: compare.Float(s.base)}
		if delta < 0 {
			// reference row t = layerdiff's token t−1: the reference has an
			// extra token in front
			if bos >= 0 && Tr > 0 && rowRes(0, bos) <= rowMatchMax && (To == 0 || o[0] != bos) {
				h.Kind = HintBOS
				h.Text = fmt.Sprintf("the reference starts with BOS (id %d) and layerdiff's tokens do not: every later reference row t is the embedding of layerdiff's token t−1 (%d rows, nmse %s): add the BOS (drop --no-bos)", bos, s.total, fnmse(s.res))
			} else {
				h.Kind = HintTokenShift
				h.Text = fmt.Sprintf("the reference has one more token in front: every reference row t ≥ 1 is the embedding of layerdiff's token t−1 (%d rows, nmse %s): the token ids are shifted by one", s.total, fnmse(s.res))
			}
		} else {
			if bos >= 0 && o[0] == bos {
				h.Kind = HintBOS
				h.Text = fmt.Sprintf("layerdiff's tokens start with BOS (id %d) and the reference's do not: every reference row t is the embedding of layerdiff's token t+1 (%d rows, nmse %s): the reference was made without BOS (use --no-bos)", bos, s.total, fnmse(s.res))
			} else {
				h.Kind = HintTokenShift
				h.Text = fmt.Sprintf("layerdiff has one more token in front: every reference row t is the embedding of layerdiff's token t+1 (%d rows, nmse %s): the token ids are shifted by one", s.total, fnmse(s.res))
			}
		}
		return []compare.Hint{h}
	}
	if s0.total == 0 || s0.matched*2 < s0.total || len(s0.miss) == 0 {
		return nil
	}
	// some positions differ: name the reference's ids there
	miss := s0.miss
	ids := make([]int32, len(miss))
	for i := range ids {
		ids[i] = -1
	}
	if len(in.RefTokens) == Tr {
		for i, t := range miss {
			ids[i] = in.RefTokens[t]
		}
	} else if nv*int64(n) <= maxVocabScan {
		look := miss[:min(len(miss), 4)]
		row := make([]float32, n)
		for id := int64(0); id < nv; id++ {
			if in.Weights.Row(wname, int(id), row) != nil {
				break
			}
			for i, t := range look {
				if ids[i] < 0 && nmseOf(row, refRow(t)) <= rowMatchMax {
					ids[i] = int32(id)
				}
			}
		}
	}
	var pos, ours, theirs []string
	for i, t := range miss {
		if i == 8 {
			pos = append(pos, "…")
			break
		}
		pos = append(pos, strconv.Itoa(t))
		if t < To {
			ours = append(ours, strconv.Itoa(int(o[t])))
		}
		if ids[i] >= 0 {
			theirs = append(theirs, strconv.Itoa(int(ids[i])))
		} else {
			theirs = append(theirs, "?")
		}
	}
	text := fmt.Sprintf("token-id mismatch at positions %s (%d of %d): the reference's rows there are not the embeddings of layerdiff's ids %s", strings.Join(pos, ", "), len(miss), s0.total, strings.Join(ours, ", "))
	if slices.ContainsFunc(ids, func(id int32) bool { return id >= 0 }) {
		text += "; they are the embeddings of ids " + strings.Join(theirs, ", ")
	}
	text += fmt.Sprintf(" (the other %d rows match, nmse %s)", s0.matched, fnmse(s0.res))
	if Tr != To {
		text += fmt.Sprintf("; the reference has %d tokens, layerdiff %d", Tr, To)
	}
	return []compare.Hint{{Kind: HintTokenMismatch, Text: text, Value: compare.Float(len(miss)), NMSE: compare.Float(s0.res), Baseline: compare.Float(s0.base)}}
}

// ---- the blamer's side ----

// fileWeights reads weights from a GGUF file.
type fileWeights struct{ f *model.File }

func (w fileWeights) Shape(name string) ([]int64, bool) {
	ti, ok := w.f.Tensor(name)
	if !ok {
		return nil, false
	}
	return ti.Ne, true
}

func (w fileWeights) Row(name string, row int, dst []float32) error {
	ti, ok := w.f.Tensor(name)
	if !ok {
		return fmt.Errorf("%s: no tensor %q", w.f.Path, name)
	}
	if len(ti.Ne) == 0 || int64(len(dst)) != ti.Ne[0] {
		return fmt.Errorf("%s: tensor %q: row of %d values, want %v[0]", w.f.Path, name, len(dst), ti.Ne)
	}
	data, err := w.f.TensorData(ti)
	if err != nil {
		return err
	}
	if err := model.DequantizeRow(ti.Type, data, row, dst); err != nil {
		return fmt.Errorf("%s: tensor %q: %w", w.f.Path, name, err)
	}
	return nil
}

// bosID is the model's tokenizer.ggml.bos_token_id, −1 when absent.
func bosID(f *model.File) int32 {
	if f == nil || !f.Has("tokenizer.ggml.bos_token_id") {
		return -1
	}
	v, err := f.Int("tokenizer.ggml.bos_token_id")
	if err != nil || v < 0 || v > math.MaxInt32 {
		return -1
	}
	return int32(v)
}

// refInputs resolves the source names of the reference node key to the
// latest earlier nodes of those names and loads the ones with full data.
func refInputs(src reference.Source, key string) ([]string, []*tensor.Tensor) {
	nodes := src.Nodes()
	at := -1
	for i := range nodes {
		if nodes[i].Key == key {
			at = i
			break
		}
	}
	if at < 0 || len(nodes[at].Src) == 0 {
		return nil, nil
	}
	names := append([]string(nil), nodes[at].Src...)
	ts := make([]*tensor.Tensor, len(names))
	for k, name := range names {
		for j := at - 1; j >= 0; j-- {
			if nodes[j].Name != name && nodes[j].Key != name {
				continue
			}
			if nodes[j].Data == reference.FullData {
				if t, err := src.Load(nodes[j].Key); err == nil && t != nil && t.Data != nil {
					ts[k] = t
				}
			}
			break
		}
	}
	return names, ts
}

// hints runs Hints on reference row i with what the blamer knows: isolated
// is layerdiff's output from the reference's inputs (nil to test the
// normal run's output).
func (b *isolationBlamer) hints(env *compare.BlameEnv, i int, isolated []float32) []compare.Hint {
	if i < 0 || i >= len(env.Rows) {
		return nil
	}
	row := env.Rows[i]
	rt, err := env.Ref.Tensor(row.Key)
	if err != nil || rt == nil || rt.Data == nil {
		return nil
	}
	in := HintInput{Name: row.Name, Op: row.Op, Ne: rt.Ne, Ref: rt.Data, Isolated: isolated, Tokens: b.tokens, BOS: -1, T: env.Tokens}
	if ours, err := env.Counterpart(i); err == nil && ours != nil && ours.Data != nil {
		in.Ours = ours
		if in.Op == "" {
			in.Op = ours.Op
		}
	}
	if rs, ok := env.Ref.(*refSide); ok {
		in.InputNames, in.Inputs = refInputs(rs.src, row.Key)
		in.RefTokens = rs.src.Describe().Tokens
	}
	if b.model != nil {
		in.Hparams = &b.model.Hparams
		in.Weights = fileWeights{b.model.File}
		in.BOS = bosID(b.model.File)
	}
	return Hints(in)
}
