package pipeline

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/diagnose"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Hint kinds of engine hypotheses (besides diagnose's).
const (
	HintSoftmaxScale = "softmax-scale" // attention scores scaled by another factor than 1/√d
	HintGQAMapping   = "gqa-mapping"   // query heads mapped to KV heads another way
	HintActivation   = "activation"    // GELU where the model has SiLU
)

// engineBlamer blames the first divergence of compare --model: the row is
// the first op of the other side that layerdiff does not reproduce from
// the other side's own inputs. It then tests hypotheses (forward.Variant)
// on that op and on the ops layerdiff computed for it (a sparse dump): the
// one whose recomputation reproduces the other side names the bug, and,
// when it is about an op the other side did not record, that op is blamed.
type engineBlamer struct {
	judge     *isoJudge
	model     *forward.Model
	tokens    []int32 // the other side's (its isolation's)
	refTokens []int32 // the reference's
	other     reference.Source
	T         int
}

func (b *engineBlamer) Blame(d *compare.Divergence, env *compare.BlameEnv) (*compare.Blame, error) {
	row := env.Rows[d.Row]
	bl := &compare.Blame{Key: row.Key, Name: row.Name, Op: row.Op, Layer: row.Layer, By: "isolation"}
	if row.Isolation == nil || row.Other == nil {
		// judged end to end (not isolated)
		fb, err := compare.FirstFail.Blame(d, env)
		if fb != nil {
			fb.Evidence = append(fb.Evidence, "this op could not be isolated: layerdiff's graph has no node matching the other side's tensor")
		}
		return fb, err
	}
	key := row.Other.Key
	if b.judge.tokenFault != "" && key == b.judge.embKey {
		bl.Evidence = []string{b.judge.tokenFault, "every later op is isolated from the other side's own tokens"}
		for _, h := range b.diagnoseHints(env, d.Row, key) {
			if h.Kind == diagnose.HintBOS && len(b.tokens) < len(b.refTokens) {
				h.Text = fmt.Sprintf("the other side's tokens lack the BOS (id %d) the reference's start with: its embedding row t is the reference's token t+1; add BOS when tokenizing (llama.cpp adds it when the model's tokenizer.ggml.add_bos_token says so)", b.refTokens[0])
			}
			bl.Hints = append(bl.Hints, h)
		}
		return bl, nil
	}
	iso := row.Isolation
	if met := row.Metrics; met != nil {
		s := fmt.Sprintf("fed the other side's own inputs, layerdiff's %s (%s) does not reproduce the other side's: nmse %s, max|Δ| %s", row.Name, row.Op, compare.FormatFloat(float64(met.NMSE), 3), compare.FormatFloat(float64(met.MaxAbs), 3))
		if iso.OtherNMSE != nil {
			other := "llama.cpp's arithmetic"
			if iso.Arithmetic == "ggml" {
				other = "exact arithmetic"
			}
			s += fmt.Sprintf(" (%s: nmse %s)", other, compare.FormatFloat(float64(*iso.OtherNMSE), 3))
		}
		bl.Evidence = append(bl.Evidence, s)
	}
	for _, why := range row.Reasons {
		bl.Evidence = append(bl.Evidence, "  "+why)
	}
	n := 0
	for i := 0; i < d.Row; i++ {
		if r := env.Rows[i]; r.Isolation != nil && r.Status == compare.Pass {
			n++
		}
	}
	bl.Evidence = append(bl.Evidence, fmt.Sprintf("%d earlier ops of the other side are reproduced from their own inputs", n))
	if row.Drift != nil {
		bl.Evidence = append(bl.Evidence, fmt.Sprintf("end to end, the other side's %s differs from the reference's by nmse %s", row.Name, compare.FormatFloat(float64(row.Drift.NMSE), 3)))
	}
	ours := b.judge.exact.ours[key]
	chain := b.judge.exact.chain[key]
	hs, culprit := b.hypotheses(key, ours, chain)
	if culprit != nil && (culprit.Name != row.Name || culprit.Op != row.Op) {
		bl.Evidence = append(bl.Evidence, fmt.Sprintf("%s (%s), which the other side did not record, is where the hypothesis below applies: blamed", culprit.Name, culprit.Op))
		bl.Key, bl.Name, bl.Op, bl.Layer = culprit.Name, culprit.Name, culprit.Op, culprit.Layer
		if keys := b.judge.exact.keys; culprit.Index >= 0 && culprit.Index < len(keys) {
			bl.Key = keys[culprit.Index] // Qcur-0#2 for the ROPE
		}
	}
	bl.Hints = append(bl.Hints, hs...)
	if len(hs) == 0 {
		bl.Hints = append(bl.Hints, b.diagnoseHints(env, d.Row, key)...)
	}
	if len(bl.Hints) == 0 && len(chain) > 0 {
		var names []string
		for _, c := range chain {
			names = append(names, c.Name+" ("+c.Op+")")
		}
		bl.Evidence = append(bl.Evidence, fmt.Sprintf("no hypothesis explains it; record the tensors of %s to find which op it is", strings.Join(names, ", ")))
	}
	return bl, nil
}

// hypothesis is one forward.Variant to try, about one op of the chain.
type hypothesis struct {
	v    forward.Variant
	at   forward.Node // the op it is about
	kind string
	text func(nmse float64) string
	// value is the hint's number (docs/report-json.md): the quantity the
	// variant sets; model the model's value of it (NaN: none).
	value, model float64
}

// hypotheses tries the variants that apply to the failing node (ours) and
// the chain of ops layerdiff computed for it, each by an exact isolation
// run; it returns the hints of those that reproduce the other side's
// tensor within its bound, and the op the first is about.
func (b *engineBlamer) hypotheses(key string, ours forward.Node, chain []forward.Node) ([]compare.Hint, *forward.Node) {
	if b.model == nil {
		return nil, nil
	}
	var hyps []hypothesis
	seen := map[string]bool{}
	ops := append([]forward.Node{ours}, chain...)
	h := b.model.Hparams
	for _, n := range ops {
		if seen[n.Op+n.Name] {
			continue
		}
		seen[n.Op+n.Name] = true
		hyps = append(hyps, hypothesesFor(n, h, b.model)...)
	}
	type hit struct {
		h   hypothesis
		res float64
	}
	base := b.judge.exact
	row := base.byKey[key]
	if row == nil || row.Metrics == nil {
		return nil, nil
	}
	var hits []hit
	for _, hy := range hyps {
		fo := base.opts
		v := hy.v
		fo.Variant = &v
		iso, err := isolate(b.other, b.model, b.tokens, fo, isolationBase(), exactBound(b.T))
		if err != nil {
			continue
		}
		r := iso.byKey[key]
		if r == nil || r.Metrics == nil || r.Status != compare.Pass {
			continue
		}
		hits = append(hits, hit{hy, float64(r.Metrics.NMSE)})
	}
	// The best explanation of each kind, best first.
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].res < hits[j].res })
	var hints []compare.Hint
	var culprit *forward.Node
	kinds := map[string]bool{}
	for _, h := range hits {
		if kinds[h.h.kind] {
			continue
		}
		kinds[h.h.kind] = true
		hint := compare.Hint{Kind: h.h.kind, Text: h.h.text(h.res), Value: compare.Float(h.h.value), NMSE: compare.Float(h.res), Baseline: row.Metrics.NMSE}
		if !math.IsNaN(h.h.model) {
			m := compare.Float(h.h.model)
			hint.Model = &m
		}
		hints = append(hints, hint)
		if culprit == nil {
			at := h.h.at
			culprit = &at
		}
	}
	return hints, culprit
}

// hypothesesFor lists the variants about op n.
func hypothesesFor(n forward.Node, h forward.Hparams, m *forward.Model) []hypothesis {
	name := n.Name
	var out []hypothesis
	add := func(kind string, v forward.Variant, value, model float64, text func(nmse float64) string) {
		out = append(out, hypothesis{v: v, at: n, kind: kind, text: text, value: value, model: model})
	}
	none := math.NaN()
	fit := func(nmse float64) string { return "residual nmse " + compare.FormatFloat(nmse, 2) }
	switch n.Op {
	case "RMS_NORM":
		eps := float64(h.NormRMSEps)
		for _, e := range []float64{eps * 10, eps / 10, eps * 100, eps / 100, 1e-5, 1e-6, 1e-8, 0} {
			ev := float32(e)
			if ev == h.NormRMSEps {
				continue
			}
			if e == 0 {
				ev = math.SmallestNonzeroFloat32
			}
			add(diagnose.HintRMSEps, forward.Variant{RMSEps: ev}, e, eps, func(nmse float64) string {
				return fmt.Sprintf("%s: the other side's RMS norm uses eps %.3g, the model's is %.3g (with eps %.3g layerdiff reproduces it: %s)", name, e, eps, e, fit(nmse))
			})
		}
	case "ROPE":
		mode := "pairs (x[2i], x[2i+1]; llama.cpp's NORM mode)"
		other := "halves (x[i], x[i+d/2]; NEOX)"
		om := float64(forward.RopeNeox)
		if h.RopeType == forward.RopeNeox {
			mode, other, om = other, mode, forward.RopeNorm
		}
		add(diagnose.HintRopeMode, forward.Variant{RopeOtherMode: true}, om, float64(h.RopeType), func(nmse float64) string {
			return fmt.Sprintf("%s: the other side rotates %s where the model rotates %s (%s)", name, other, mode, fit(nmse))
		})
		for _, off := range []int{1, -1} {
			add(diagnose.HintRopePosition, forward.Variant{PosOffset: off}, float64(off), 0, func(nmse float64) string {
				return fmt.Sprintf("%s: the other side's RoPE positions are off by %+d (it rotates token t as position t%+d; %s)", name, off, off, fit(nmse))
			})
		}
		for _, base := range []float32{10000, 500000, 1000000, 100000, 1000000000} {
			if base == h.RopeBase {
				continue
			}
			add(diagnose.HintRopeBase, forward.Variant{RopeBase: base}, float64(base), float64(h.RopeBase), func(nmse float64) string {
				return fmt.Sprintf("%s: the other side's RoPE base is %g, the model's %g (%s)", name, base, h.RopeBase, fit(nmse))
			})
		}
	case "SOFT_MAX", "FLASH_ATTN_EXT":
		d := float64(h.HeadDimK)
		want := 1 / math.Sqrt(d)
		for _, c := range []struct {
			s    float64
			what string
		}{{1 / d, "1/d"}, {1, "1 (no scaling)"}, {1 / math.Sqrt(float64(h.NEmbd)), "1/√n_embd"}} {
			if math.Abs(c.s-want) < 1e-12 {
				continue
			}
			s, what := c.s, c.what
			add(HintSoftmaxScale, forward.Variant{AttnScale: float32(s)}, s, want, func(nmse float64) string {
				return fmt.Sprintf("%s: the other side scales Q·K by %.4g = %s, llama.cpp by 1/√d = %.4g with d = %.0f (%s)", name, s, what, want, d, fit(nmse))
			})
		}
	case "MUL_MAT":
		base, _ := tensor.SplitName(name)
		if (base == "kq" || base == "kqv") && h.NHead != h.NHeadKV {
			add(HintGQAMapping, forward.Variant{GQATile: true}, 0, none, func(nmse float64) string {
				return fmt.Sprintf("%s: the other side maps query head h to KV head h mod %d (numpy tile / repeat of the whole block); llama.cpp maps it to h / %d (repeat_interleave) (%s)", name, h.NHeadKV, h.NHead/h.NHeadKV, fit(nmse))
			})
		}
		if len(n.SrcNames) > 0 && strings.HasSuffix(n.SrcNames[0], ".weight") {
			w := n.SrcNames[0]
			if ti, ok := m.File.Tensor(w); ok && len(ti.Ne) >= 2 && ti.Ne[0] == ti.Ne[1] {
				add(diagnose.HintWeightTransposed, forward.Variant{TransposedWeight: w}, 0, none, func(nmse float64) string {
					return fmt.Sprintf("%s: the other side multiplies by %s transposed (GGUF stores it {in, out}: numpy's W is shape (out, in), y = x @ W.T) (%s)", name, w, fit(nmse))
				})
			}
		}
	case "SWIGLU":
		for _, act := range []string{"gelu", "gelu-erf"} {
			add(HintActivation, forward.Variant{Act: act}, 0, none, func(nmse float64) string {
				return fmt.Sprintf("%s: the other side's FFN activation is %s, the model's SiLU (%s)", name, strings.ToUpper(act), fit(nmse))
			})
		}
	}
	return out
}

// diagnoseHints runs pkg/diagnose's hints on the other side's tensor with
// layerdiff's isolated output (the token hints of an embedding, and the
// generic ones).
func (b *engineBlamer) diagnoseHints(env *compare.BlameEnv, i int, key string) []compare.Hint {
	ot, err := env.Other.Tensor(key)
	if err != nil || ot == nil || ot.Data == nil {
		return nil
	}
	row := env.Rows[i]
	in := diagnose.Input{Name: row.Name, Op: row.Op, Ne: ot.Ne, Ref: ot.Data, Tokens: b.refTokens, BOS: -1, T: b.T}
	withModel(&in, b.model)
	in.RefTokens = b.other.Describe().Tokens
	if in.Op == "" {
		in.Op = "GET_ROWS"
	}
	return diagnose.Hints(in)
}
