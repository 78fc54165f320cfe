package pipeline

import (
	"fmt"
	"regexp"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// isolationBlamer blames by isolation: it runs layerdiff's forward pass once
// more, replacing the value of every node that has a full reference
// counterpart by the reference's value after recording what layerdiff
// computed from the reference's inputs. An op that reproduces the reference
// from the reference's inputs only inherited drift; the blamed op is the
// first whose output differs even when fed the reference's inputs.
type isolationBlamer struct {
	model  *forward.Model
	tokens []int32
	opts   forward.Options
	user   *injector      // the user's --inject perturbations, part of "our" ops
	all    bool           // isolate every op (--isolate), not only up to the first divergence
	filter *regexp.Regexp // the run's node filter: keys are counted as its recorder counts them
	// Isolated is filled by Blame: per reference row, the metrics of
	// layerdiff's op fed with the reference's inputs.
	Isolated map[int]*compare.Metrics
}

// isolating is the Injector of the isolation run.
type isolating struct {
	user    *injector
	keys    offerKeys      // the recorder's keys (Want counts the rest)
	target  map[string]int // our key -> reference row
	refData map[int][]float32
	got     map[int][]float32 // reference row -> our output from the reference's inputs
}

func (s *isolating) Inject(n *forward.Node, computed []float32) ([]float32, bool) {
	perturbed := false
	if s.user != nil {
		perturbed = s.user.apply(n, computed)
	}
	key, ok := s.keys.offer(n)
	if !ok {
		return computed, perturbed
	}
	row, ok := s.target[key]
	if !ok {
		return computed, perturbed
	}
	ref := s.refData[row]
	if len(ref) != len(computed) {
		return computed, perturbed
	}
	s.got[row] = append([]float32(nil), computed...)
	return ref, true
}

// Want counts the key of every node Inject was not offered (views, f16
// nodes), so that Inject keys nodes as the run's recorder does; it records
// nothing.
func (s *isolating) Want(n *forward.Node) bool {
	s.keys.want(n)
	return false
}

func (s *isolating) Record(*forward.Node, *tensor.Tensor) error { return nil }

func (b *isolationBlamer) Blame(d *compare.Divergence, env *compare.BlameEnv) (*compare.Blame, error) {
	last := d.Row
	if b.all {
		last = len(env.Rows) - 1
	}
	iso := &isolating{user: b.user, keys: offerKeys{keys: nodeKeys{filter: b.filter}}, target: map[string]int{}, refData: map[int][]float32{}, got: map[int][]float32{}}
	if b.user != nil {
		b.user.reset()
	}
	for i := 0; i <= last && i < len(env.Rows); i++ {
		row := env.Rows[i]
		m := env.Alignment.Matches[i]
		if m.Other < 0 || row.Status == compare.Skipped {
			continue
		}
		on := env.OtherNodes[m.Other]
		if row.Transform != compare.SameShape || !tensor.SameShape(on.Ne, row.Ne) {
			continue
		}
		rt, err := env.Ref.Tensor(row.Key)
		if err != nil || rt.Data == nil {
			continue
		}
		iso.target[on.Key] = i
		iso.refData[i] = rt.Data
	}
	if len(iso.target) == 0 {
		bl, err := compare.FirstFail.Blame(d, env)
		if bl != nil {
			bl.Evidence = append(bl.Evidence, "no op could be isolated: the reference has no full tensors aligned with layerdiff's (a text log shows only a few elements)")
			bl.Hints = b.hints(env, d.Row, nil)
		}
		return bl, err
	}
	opts := b.opts
	opts.Inject = iso
	if _, err := b.model.Run(b.tokens, opts, iso); err != nil {
		return nil, fmt.Errorf("isolation run: %w", err)
	}
	b.Isolated = map[int]*compare.Metrics{}
	blamed := -1
	var blamedJ compare.Judgement
	for i := 0; i <= last && i < len(env.Rows); i++ {
		got, ok := iso.got[i]
		if !ok {
			continue
		}
		row := env.Rows[i]
		tol := env.Policy.ResolveNode(row.Key, row.Name, row.Op)
		met := compare.Measure(iso.refData[i], got, row.Ne, tol)
		if tol.Selection {
			// an expert selection: judged on the report's k experts
			k := 0
			if row.Metrics != nil && row.Metrics.Selection != nil {
				k = row.Metrics.Selection.K
			}
			met.Selection = compare.MeasureSelection(iso.refData[i], got, row.Ne, k)
		}
		b.Isolated[i] = &met
		j := compare.Judge(&met, tol)
		if j.Status == compare.Fail && blamed < 0 {
			blamed, blamedJ = i, j
			if !b.all {
				break
			}
		}
	}
	div := env.Rows[d.Row]
	if blamed < 0 {
		bl := &compare.Blame{Key: d.Key, Name: d.Name, Op: d.Op, Layer: d.Layer, By: "isolation"}
		bl.Evidence = append(bl.Evidence, "every op up to the first divergence reproduces the reference from the reference's inputs: the divergence is accumulated drift, not one op's error")
		if met, ok := b.Isolated[d.Row]; ok && met.Selection != nil {
			// an expert selection that reproduces: its scores moved it
			bl.Evidence = append(bl.Evidence, fmt.Sprintf("%s from the reference's inputs: the same experts: the other selection comes from the other side's router probabilities, which are within tolerance (the selection row gives the gap between the experts involved)", d.Name))
		} else if ok {
			bl.Evidence = append(bl.Evidence, fmt.Sprintf("%s from the reference's inputs: nmse %s", d.Name, compare.FormatFloat(float64(met.NMSE), 3)))
		} else {
			bl.Evidence = append(bl.Evidence, fmt.Sprintf("%s could not be recomputed from the reference's inputs", d.Name))
		}
		bl.Hints = b.hints(env, d.Row, nil)
		return bl, nil
	}
	r := env.Rows[blamed]
	met := b.Isolated[blamed]
	bl := &compare.Blame{Key: r.Key, Name: r.Name, Op: r.Op, Layer: r.Layer, By: "isolation"}
	if met.Selection != nil {
		bl.Evidence = append(bl.Evidence, fmt.Sprintf("fed the reference's inputs, layerdiff's %s (%s) still selects other experts, at %d tokens", r.Name, r.Op, met.Selection.Differ))
	} else {
		bl.Evidence = append(bl.Evidence, fmt.Sprintf("fed the reference's inputs, layerdiff's %s (%s) still differs: nmse %s, max|Δ| %s", r.Name, r.Op, compare.FormatFloat(float64(met.NMSE), 3), compare.FormatFloat(float64(met.MaxAbs), 3)))
	}
	for _, why := range blamedJ.Reasons {
		bl.Evidence = append(bl.Evidence, "  "+why)
	}
	if blamed != d.Row {
		dm := b.Isolated[d.Row]
		s := fmt.Sprintf("the first divergence %s (%s) is downstream", div.Name, div.Op)
		if dm != nil {
			s += fmt.Sprintf(": fed the reference's inputs it gives nmse %s, so it inherited the error", compare.FormatFloat(float64(dm.NMSE), 3))
		}
		bl.Evidence = append(bl.Evidence, s)
	}
	n := 0
	for i := 0; i < blamed; i++ {
		if _, ok := b.Isolated[i]; ok {
			n++
		}
	}
	bl.Evidence = append(bl.Evidence, fmt.Sprintf("%d earlier ops reproduce the reference from its inputs", n))
	bl.Hints = b.hints(env, blamed, iso.got[blamed])
	return bl, nil
}
