package pipeline

import (
	"fmt"
	"math"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// The cross-kernel mode: how `run` judges a reference whose kernel profile
// layerdiff does not emulate (an ARM or repack build, a GPU, a log without
// system_info). Last-bit differences are then expected in every reduction,
// and through rounding thresholds (Q8 activation quantization, f16
// storage) a last-bit difference can grow into a visible one and compound
// through the layers. So no op is judged by its end-to-end error: each is
// judged by what it does to the reference's own inputs — layerdiff's op fed
// the reference's inputs (the isolation run), against the reference's
// output — with a bound computed from the op, its reduction length and the
// arithmetic the two kernels may differ in. The bounds are formulas
// (docs/tolerance.md, "Cross-kernel bounds"); an op that only inherited
// drift passes, an op whose arithmetic is wrong fails where it is.

// ModeCrossKernel names the cross-kernel policy in reports.
const ModeCrossKernel = "cross-kernel"

// Unit roundoffs: float32, float16.
const (
	unitF32 = 0x1p-24
	unitF16 = 0x1p-11
)

// Safety factors of the cross-kernel bounds: on the mean squared error
// (nmse_max) and on one element (atol_rms, rtol). The rounding error of a
// recursive sum of n terms has a mean square of about n·u²/6 of the
// output's (each partial sum rounds with a uniform error of at most u of
// itself), per side: 16·n·u² is 48 times what two sides give together.
// Its spread is Gaussian-like, and 8 standard deviations on one element
// is not reached by chance in 10⁹ elements.
const (
	crossNMSEFactor = 16
	crossElemFactor = 8
	// crossReductionOutliers is the fraction of a reduction's elements
	// allowed outside the elementwise bound (see tolerance).
	crossReductionOutliers = 1e-3
)

// crossBound is the arithmetic of one op that two kernel builds may do
// differently: a reduction of n terms accumulated with unit roundoff uacc
// (in a different order, or in other precision), plus a per-element
// relative error extra of its own (an exp polynomial, sin/cos), plus
// flips, the expected squared error, relative to the output's mean square,
// that rounding thresholds downstream of the reduction add (an f16
// accumulator's rounding turned the other way by a last-bit difference).
type crossBound struct {
	n, uacc, extra, flips float64
	// flip is the relative size of one such flipped rounding (an f16
	// unit): one element may be off by 2·flip of itself and of the RMS.
	flip float64
	// mismatch is the fraction of elements allowed outside the
	// elementwise bound (Q8 activation flips: whole token columns).
	mismatch float64
	why      string
}

// tolerance turns a bound into the row's tolerance:
//
//	nmse_max = 16 · (n·uacc² + extra² + flips)
//	atol_rms = 8 · (√n·uacc + extra + √flips) + 2·flip
//	rtol     = 8 · extra + 2·flip
//	mismatch_frac_max = max(mismatch, 1e-3 when n > 1)
func (b crossBound) tolerance() compare.Override {
	n := math.Max(b.n, 1)
	nmse := crossNMSEFactor * (n*b.uacc*b.uacc + b.extra*b.extra + b.flips)
	arms := crossElemFactor*(math.Sqrt(n)*b.uacc+b.extra+math.Sqrt(b.flips)) + 2*b.flip
	rtol := crossElemFactor*b.extra + 2*b.flip
	f := func(v float64) *compare.Float { x := compare.Float(v); return &x }
	zero := compare.Float(0)
	off := false
	mis := b.mismatch
	if b.n > 1 {
		// An element whose products cancel (|y| far below Σ|a·b|) has a
		// rounding error large against the tensor's RMS: one in a
		// thousand may exceed the elementwise bound; nmse_max still
		// bounds them all.
		mis = math.Max(mis, crossReductionOutliers)
	}
	return compare.Override{NMSEMax: f(nmse), ATol: &zero, ATolRMS: f(arms), RTol: f(rtol), MismatchFracMax: f(math.Min(mis, 1)), BitExact: &off}
}

// f16Accumulating reports whether kernels of this profile may accumulate
// products of f16 operands in f16 (NEON with FP16 vector arithmetic does in
// ggml_vec_dot_f16 and tinyBLAS; a GPU may).
func f16Accumulating(profile string) bool {
	return strings.HasPrefix(profile, "arm64") || profile == reference.ProfileUnknown || profile == ""
}

// quantizersMayDiffer reports whether the reference's profile may quantize
// activations (Q8_0, Q8_1, Q8_K) by another rounding than the emulated
// one's: ggml's x86 and ARM quantizers compute the inverse scale
// differently (127/amax against 1/(amax/127)), so an activation exactly
// between two quanta can round the other way; x86 profiles share theirs.
func quantizersMayDiffer(profile, emulated string) bool {
	family := func(p string) string {
		if i := strings.IndexByte(p, '-'); i > 0 {
			return p[:i]
		}
		return p
	}
	return profile == "" || profile == reference.ProfileUnknown || family(profile) != family(emulated)
}

// crossBoundOf returns the bound of one reference node. ne looks up the
// shape of a source (a model tensor or an earlier node) by name; T is the
// number of prompt tokens (the most key/value cells a position attends
// to); profile is the reference's kernel profile, emulated layerdiff's.
func crossBoundOf(n reference.NodeInfo, srcNe func(string) ([]int64, quant.Type, bool), T int, profile, emulated string) crossBound {
	op := n.Op
	if i := strings.IndexByte(op, '('); i > 0 && strings.HasSuffix(op, ")") {
		op = op[i+1 : len(op)-1]
	}
	src := func(i int) ([]int64, quant.Type, bool) {
		if i >= len(n.Src) {
			return nil, 0, false
		}
		return srcNe(n.Src[i])
	}
	uaccOf := func(t quant.Type) float64 {
		if (t == quant.F16 || t == quant.BF16) && f16Accumulating(profile) {
			return unitF16
		}
		return unitF32
	}
	kv := float64(T)
	switch op {
	case "MUL_MAT", "MUL_MAT_ID":
		ne, t, ok := src(0)
		if !ok || len(ne) == 0 {
			return crossBound{n: 4096, uacc: unitF32, why: "dot products of unknown length (4096 assumed)"}
		}
		k := float64(ne[0])
		b := crossBound{n: k, uacc: uaccOf(t), why: fmt.Sprintf("dot products of %d %s products", ne[0], t)}
		if t.Quantized() {
			// The integer dot products are exact; their float sums over
			// the blocks are reordered: n/32 terms at most, bounded by the
			// reduction above.
			b.why += " (integer block sums, float accumulation reordered)"
			if quantizersMayDiffer(profile, emulated) {
				// An activation quantized one quantum d = amax/127 the
				// other way moves its token's outputs by d·W[:,k]: of their
				// mean square about (amax/127)²/(k·rms²) ≤ (4/127)²/k
				// (amax within 4 RMS), ×4 for heavier weight columns; up
				// to nf such flips (one, plus one per 4096 activations)
				// over T tokens, each a whole token column outside the
				// elementwise bound.
				tt := math.Max(float64(T), 1)
				nf := 1 + k*tt/4096
				b.flips = nf * 4 * (4.0 / 127) * (4.0 / 127) / (k * tt)
				b.mismatch = nf / tt
				b.why += ", Q8 activation rounding may differ"
			}
		}
		return b
	case "FLASH_ATTN_EXT":
		ne, t, ok := src(1)
		d := 128.0
		if ok && len(ne) > 0 {
			d = float64(ne[0])
		}
		ua := uaccOf(t)
		if !ok {
			ua = uaccOf(quant.F16)
		}
		// Q·K over d, a softmax over kv (exp polynomial), and V summed
		// over kv in an f16 accumulator that rounds each partial sum: a
		// score that differs in its last bits turns some of those
		// roundings the other way (each half an f16 unit).
		score := math.Sqrt(d) * ua * 8 // relative error of a score of magnitude up to ~8
		return crossBound{n: kv, uacc: unitF32, extra: 4*unitF32 + score, flips: kv * unitF16 * score, flip: unitF16,
			why: fmt.Sprintf("Q·K over %.0f, softmax and f16 V accumulation over up to %.0f cells", d, kv)}
	case "SOFT_MAX":
		if base, _ := tensor.SplitName(n.Name); base == "ffn_moe_probs" && len(n.Ne) > 0 {
			// a mixture of experts' router: over the experts
			return crossBound{n: float64(n.Ne[0]), uacc: unitF32, extra: 4 * unitF32, why: fmt.Sprintf("exp polynomial and a sum over %d experts", n.Ne[0])}
		}
		return crossBound{n: kv, uacc: unitF32, extra: 4 * unitF32, why: "exp polynomial and a sum over the cells"}
	case "SUM_ROWS":
		// (the MoE weights' sum: ggml adds in double, another kernel may not)
		k := 1.0
		if ne, _, ok := src(0); ok && len(ne) > 0 {
			k = float64(ne[0])
		}
		return crossBound{n: k, uacc: unitF32, extra: unitF32, why: fmt.Sprintf("a sum of %.0f values", k)}
	case "ARGSORT":
		return crossBound{n: 1, uacc: unitF32, why: "an expert selection, judged as one (the first k indices per token)"}
	case "RMS_NORM", "NORM", "L2_NORM":
		k := 1.0
		if len(n.Ne) > 0 {
			k = float64(n.Ne[0])
		}
		return crossBound{n: k, uacc: unitF32, extra: 2 * unitF32, why: fmt.Sprintf("a sum of %.0f squares", k)}
	case "SILU", "GELU", "GELU_QUICK", "GELU_ERF", "SWIGLU", "GEGLU", "GEGLU_ERF", "GEGLU_QUICK", "REGLU", "EXP", "TANH", "SIGMOID", "SWIGLU_OAI":
		return crossBound{n: 1, uacc: unitF32, extra: 4 * unitF32, why: "an exp/tanh polynomial"}
	case "ROPE":
		return crossBound{n: 1, uacc: unitF32, extra: 16 * unitF32, why: "sin/cos of the rotation angles"}
	case "ADD_ID": // gpt-oss
		return crossBound{n: 1, uacc: unitF32, extra: unitF32, why: "one addition per element (an expert's bias row)"}
	}
	return crossBound{n: 1, uacc: unitF32, extra: unitF32, why: "correctly rounded elementwise arithmetic"}
}

// CrossKernelPolicy is the cross-kernel policy for a reference's nodes
// (kernel profile profile, judged against layerdiff's emulated one): the
// ggml policy's logits and shared-NaN rules, every node's bounds from
// crossBoundOf (per node key), and force's forced values.
func CrossKernelPolicy(nodes []reference.NodeInfo, f *gguf.File, T int, profile, emulated string, force compare.Override) *compare.Policy {
	pol := compare.MustPolicy(compare.ModeGGML)
	pol.Mode = ModeCrossKernel
	delete(pol.Names, "inp_embd")
	pol.Force = force
	pol.Keys = make(map[string]compare.Override, len(nodes))
	type shape struct {
		ne []int64
		t  quant.Type
	}
	seen := map[string]shape{}
	lookup := func(name string) ([]int64, quant.Type, bool) {
		if s, ok := seen[name]; ok {
			return s.ne, s.t, true
		}
		if f != nil {
			if ti, ok := f.Tensor(name); ok {
				return ti.Ne, ti.Type, true
			}
		}
		return nil, 0, false
	}
	for _, n := range nodes {
		b := crossBoundOf(n, lookup, T, profile, emulated)
		pol.Keys[n.Key] = b.tolerance()
		t, _ := quant.ParseType(n.Type)
		seen[n.Name] = shape{ne: n.Ne, t: t}
	}
	return pol
}

// crossInjector is the Injector of a cross-kernel run: every node with a
// full reference counterpart of the same shape gets the reference's value
// after its own output has been kept for the recorder, so each op is
// computed from the reference's inputs.
type crossInjector struct {
	user   *injector
	keys   offerKeys         // the recorder's keys (crossRecorder.Want counts the rest)
	target map[string]string // our key -> reference key
	// plans maps our key to the transform from our node (as the reference
	// of the plan) to the reference's, where the layouts differ.
	plans map[string]compare.Transform
	ref   compare.Side // its own refSide: its buffers are not Compare's
	// last is our own output of the node just injected, for Record.
	last     []float32
	lastNode *forward.Node
	err      error // the first reference tensor that could not be read
}

func (c *crossInjector) Inject(n *forward.Node, computed []float32) ([]float32, bool) {
	perturbed := false
	if c.user != nil {
		perturbed = c.user.apply(n, computed)
	}
	c.last, c.lastNode = nil, nil
	key, ok := c.keys.offer(n)
	if !ok {
		return computed, perturbed
	}
	rk, ok := c.target[key]
	if !ok {
		return computed, perturbed
	}
	rt, err := c.ref.Tensor(rk)
	if err != nil || rt == nil || rt.Data == nil {
		if err != nil && c.err == nil {
			c.err = err
		}
		return computed, perturbed
	}
	own := append([]float32(nil), computed...)
	if plan, ok := c.plans[key]; ok {
		// another layout (an engine's): its values written into ours;
		// elements it lacks (KV cells beyond T) keep our own
		if !plan.Embed(rt.Data, rt.Ne, computed) {
			return computed, perturbed
		}
	} else if len(rt.Data) != len(computed) {
		return computed, perturbed
	} else {
		copy(computed, rt.Data)
	}
	c.last, c.lastNode = own, n
	if r, ok := c.ref.(compare.Releaser); ok {
		r.Release(rk)
	}
	return computed, true
}

// crossRecorder records, for every injected node, layerdiff's own output
// (from the reference's inputs) instead of the injected reference value.
// (The forward pass hands Inject and then Record the same *Node.)
type crossRecorder struct {
	*streamSide
	inj *crossInjector
}

func (r crossRecorder) Want(n *forward.Node) bool {
	r.inj.keys.want(n)
	return r.streamSide.Want(n)
}

func (r crossRecorder) Record(n *forward.Node, t *tensor.Tensor) error {
	if r.inj.last != nil && r.inj.lastNode == n {
		t.Data, r.inj.last = r.inj.last, nil
	}
	return r.streamSide.Record(n, t)
}

// crossTargets aligns the reference with the run's nodes and lists the
// nodes to inject: ours → the reference's key, where the reference has the
// full tensor with our shape.
func crossTargets(refNodes []reference.NodeInfo, ref compare.Side, ours []compare.Node) map[string]string {
	al := compare.Align(ref.Nodes(), ours, compare.DefaultAliases)
	out := map[string]string{}
	for i, m := range al.Matches {
		if m.Other < 0 || refNodes[i].Data != reference.FullData {
			continue
		}
		on := ours[m.Other]
		if !tensor.SameShape(on.Ne, refNodes[i].Ne) {
			continue
		}
		if _, dup := out[on.Key]; !dup {
			out[on.Key] = refNodes[i].Key
		}
	}
	return out
}

// hasFullData reports whether any node of the reference has every element
// (a dump, an .npy directory), as the cross-kernel mode needs.
func hasFullData(nodes []reference.NodeInfo) bool {
	for _, n := range nodes {
		if n.Data == reference.FullData {
			return true
		}
	}
	return false
}

// crossBlamer blames the first divergence of a cross-kernel comparison:
// every row there is already layerdiff's op fed the reference's inputs, so
// the first failing row is the op whose own arithmetic is wrong.
type crossBlamer struct {
	iso *isolationBlamer // for its hints
}

func (b *crossBlamer) Blame(d *compare.Divergence, env *compare.BlameEnv) (*compare.Blame, error) {
	row := env.Rows[d.Row]
	bl := &compare.Blame{Key: row.Key, Name: row.Name, Op: row.Op, Layer: row.Layer, By: "isolation"}
	if met := row.Metrics; met != nil {
		bl.Evidence = append(bl.Evidence, fmt.Sprintf("fed the reference's inputs, layerdiff's %s (%s) differs beyond the cross-kernel bound: nmse %s, max|Δ| %s", row.Name, row.Op, compare.FormatFloat(float64(met.NMSE), 3), compare.FormatFloat(float64(met.MaxAbs), 3)))
	}
	for _, why := range row.Reasons {
		bl.Evidence = append(bl.Evidence, "  "+why)
	}
	n := 0
	for i := 0; i < d.Row; i++ {
		if env.Rows[i].Status == compare.Pass {
			n++
		}
	}
	bl.Evidence = append(bl.Evidence, fmt.Sprintf("%d earlier ops reproduce the reference from its inputs within their bounds", n))
	var ours []float32
	if t, err := env.Counterpart(d.Row); err == nil && t != nil {
		ours = t.Data
	}
	bl.Hints = b.iso.hints(env, d.Row, ours)
	return bl, nil
}
