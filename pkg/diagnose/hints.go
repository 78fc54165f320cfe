package diagnose

import (
	"math"
	"strconv"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
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

// Input is what Hints knows about the node the blamer holds
// responsible. Name, Ne and Ref are required; every test runs when its
// inputs are present and is skipped otherwise.
type Input struct {
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
func Hints(in Input) []compare.Hint {
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
