package compare

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Side gives access to one side of a comparison: the graph's nodes in
// graph order, and each node's tensor by key. Compare asks for one tensor at
// a time, so a Side may read lazily from disk.
type Side interface {
	Nodes() []Node
	Tensor(key string) (*tensor.Tensor, error)
}

// Releaser is implemented by a Side that can free a tensor once Compare
// has measured it, such as a Side fed by a forward pass that is still
// running. Compare releases the reference tensor of every matched row it
// has measured, and an other side's tensor once every row reading it has
// been measured (several rows may read one: a reference view without its
// own counterpart is compared with its source's), except the first
// divergence's tensors, which stay for the Blamer; before measuring, it
// releases the other side's tensors no row will read. A Side must still
// give a released tensor when asked again (a Blamer may ask for any row's),
// reading or computing it anew.
type Releaser interface {
	Release(key string)
}

// TensorList is an in-memory Side holding tensors in graph order.
type TensorList struct {
	list  []*tensor.Tensor
	nodes []Node
	byKey map[string]int
}

// NewTensorList makes a Side of tensors in graph order. A tensor with an
// empty Key is keyed by its Name; a key seen before gets the suffix "#N"
// (N = 1, 2, … per repeat) so every key is unique.
func NewTensorList(ts []*tensor.Tensor) *TensorList {
	l := &TensorList{byKey: make(map[string]int, len(ts))}
	seen := map[string]int{}
	for _, t := range ts {
		if t == nil {
			continue
		}
		n := NodeOf(t)
		if n.Key == "" {
			n.Key = n.Name
		}
		if _, dup := l.byKey[n.Key]; dup {
			base := n.Key
			for {
				seen[base]++
				n.Key = base + "#" + strconv.Itoa(seen[base])
				if _, dup := l.byKey[n.Key]; !dup {
					break
				}
			}
		}
		l.byKey[n.Key] = len(l.list)
		l.list = append(l.list, t)
		l.nodes = append(l.nodes, n)
	}
	return l
}

// Nodes implements Side.
func (l *TensorList) Nodes() []Node { return l.nodes }

// Tensor implements Side.
func (l *TensorList) Tensor(key string) (*tensor.Tensor, error) {
	i, ok := l.byKey[key]
	if !ok {
		return nil, fmt.Errorf("compare: no tensor with key %q", key)
	}
	return l.list[i], nil
}

// Blamer decides which node caused the first divergence. layerdiff's
// recomputing blamer re-runs the divergent op (and its producers) on the
// reference's inputs; FirstFail is the fallback that blames the divergent
// node itself.
type Blamer interface {
	// Blame returns the blamed node and the evidence for it. An error is
	// reported as a warning and leaves the report without blame.
	Blame(d *Divergence, env *BlameEnv) (*Blame, error)
}

// BlamerFunc adapts a function to Blamer.
type BlamerFunc func(d *Divergence, env *BlameEnv) (*Blame, error)

// Blame implements Blamer.
func (f BlamerFunc) Blame(d *Divergence, env *BlameEnv) (*Blame, error) { return f(d, env) }

// BlameEnv gives a Blamer access to both sides and to the comparison.
type BlameEnv struct {
	Ref, Other           Side
	RefNodes, OtherNodes []Node
	Alignment            *Alignment
	// Rows are the report's rows (all of them, in graph order).
	Rows   []Row
	Policy *Policy
	Tokens int
}

// Counterpart returns the other side's tensor aligned with reference node
// i, or nil when it has none.
func (e *BlameEnv) Counterpart(i int) (*tensor.Tensor, error) {
	if i < 0 || i >= len(e.Alignment.Matches) {
		return nil, fmt.Errorf("compare: reference node %d out of range", i)
	}
	o := e.Alignment.Matches[i].Other
	if o < 0 {
		return nil, nil
	}
	return e.Other.Tensor(e.OtherNodes[o].Key)
}

// FirstFail blames the first divergent node itself: with every earlier
// tensor within tolerance, it is the first op whose output disagrees. Its
// evidence names the last passing tensor before it.
var FirstFail Blamer = BlamerFunc(firstFail)

func firstFail(d *Divergence, env *BlameEnv) (*Blame, error) {
	b := &Blame{Key: d.Key, Name: d.Name, Op: d.Op, Layer: d.Layer, By: "first-fail"}
	b.Evidence = append(b.Evidence, "first tensor outside tolerance in graph order")
	prev := -1
	for i := d.Row - 1; i >= 0; i-- {
		if env.Rows[i].Status == Pass {
			prev = i
			break
		}
	}
	if prev >= 0 {
		r := env.Rows[prev]
		nm := "?"
		if r.Metrics != nil {
			nm = FormatFloat(float64(r.Metrics.NMSE), 3)
		}
		b.Evidence = append(b.Evidence, fmt.Sprintf("the last passing tensor before it is %s (%s), nmse %s", r.Name, nonEmpty(r.Op, "?"), nm))
	} else {
		b.Evidence = append(b.Evidence, "no tensor before it was measured and passed")
	}
	if d.Token >= 0 {
		b.Evidence = append(b.Evidence, fmt.Sprintf("first failing token: %d", d.Token))
	}
	b.Evidence = append(b.Evidence, "op not recomputed: the inputs' contribution is not separated from the op's own error")
	return b, nil
}

// Options control Compare.
type Options struct {
	// Policy judges each tensor; nil means DefaultPolicy("ggml").
	Policy *Policy
	// Meta is copied into the report (Mode and NTokens are filled in).
	Meta Meta
	// Tokens is the prompt length T for per-token slicing; 0 means
	// len(Meta.Tokens), or else the embedding's last dimension.
	Tokens int
	// Filter keeps a reference node when it returns true; nil keeps all.
	// Dropped nodes become rows with status skipped.
	Filter func(Node) bool
	// Blamer fills Report.Blame; nil means FirstFail.
	Blamer Blamer
	// Worst is how many worst elements of the first divergence to keep
	// (default 10; negative keeps none).
	Worst int
	// Aliases is the alignment name table; nil means DefaultAliases.
	Aliases []Alias
	// Warnings from earlier stages (readers) are copied into the report.
	Warnings []string
	// Workers is how many tensors are read and measured at once (0: one
	// per CPU). Each holds its two tensors in memory.
	Workers int
	// Rejudge, when set, is called for every measured row in graph order
	// after measuring and may judge it anew (isolation: compare --model).
	// It returns whether it did, and then the worst elements to report
	// should the row be the first divergence.
	Rejudge func(row *Row) (worst []Element, rejudged bool)
}

// Compare aligns the other side to the reference, measures and judges every
// reference tensor in graph order, and returns the report. Bad data (a
// tensor that cannot be read, a shape without correspondence) becomes row
// statuses and warnings; an error is returned only when the reference has
// no nodes.
func Compare(ref, other Side, opts Options) (*Report, error) {
	refNodes, otherNodes := ref.Nodes(), other.Nodes()
	if len(refNodes) == 0 {
		return nil, fmt.Errorf("compare: the reference has no tensors")
	}
	pol := opts.Policy
	if pol == nil {
		pol = MustPolicy(ModeGGML)
	}
	aliases := opts.Aliases
	if aliases == nil {
		aliases = DefaultAliases
	}
	nWorst := opts.Worst
	if nWorst == 0 {
		nWorst = 10
	}
	rep := &Report{Schema: SchemaVersion, Meta: opts.Meta, Policy: pol}
	rep.Meta.Mode = pol.Mode
	rep.Warnings = append(rep.Warnings, opts.Warnings...)
	switch how, a, b := opts.Meta.ModelsDiffer(); how {
	case "sha256", "fingerprint":
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("reference made from a different model file (%s %s, other side %s)", how, a, b))
	}

	T := opts.Tokens
	if T == 0 {
		T = len(opts.Meta.Tokens)
	}
	if T == 0 {
		T = inferTokens(refNodes, aliases)
	}
	rep.Meta.NTokens = T
	if T == 0 {
		rep.Warnings = append(rep.Warnings, "prompt length unknown: no per-token slicing (first failing token not reported)")
	}

	al := Align(refNodes, otherNodes, aliases)
	sels := selectionSpecs(refNodes, otherNodes)
	type job struct {
		row    int // index in rep.Tensors
		rn, on Node
		out    rowOutcome
	}
	var jobs []job
	for i, rn := range refNodes {
		row := Row{Index: i, Key: rn.Key, Name: rn.Name, Op: rn.Op, Layer: al.RefLayers[i], Ne: rn.Ne, FirstFailToken: -1}
		if opts.Filter != nil && !opts.Filter(rn) {
			row.Status = Skipped
			row.Reasons = []string{"filtered out"}
			rep.Skipped = append(rep.Skipped, Dropped{Side: "reference", Key: rn.Key, Name: rn.Name, Op: rn.Op, Layer: row.Layer, Reason: "filtered out"})
			rep.Tensors = append(rep.Tensors, row)
			continue
		}
		if rn.Derived != "" {
			row.Derived = true
			row.Notes = append(row.Notes, "derived: "+rn.Derived)
		}
		m := al.Matches[i]
		if rn.NoData {
			// Nothing to measure, matched or not: not a matching problem.
			row.Status = Unmeasured
			row.Reasons = []string{reasonNoData}
			if m.Other >= 0 {
				on := otherNodes[m.Other]
				row.Other = &Counterpart{Key: on.Key, Name: on.Name, Op: on.Op, Ne: on.Ne, Match: m.How}
			}
			rep.Tensors = append(rep.Tensors, row)
			continue
		}
		if m.Other < 0 {
			reason := "no counterpart on the other side"
			if rn.Unreadable != "" {
				reason = "cannot be read: " + rn.Unreadable
			} else if in := describe([]Node{rn}, aliases)[0]; in.permuted {
				reason = "permuted view without a counterpart (its element order differs from the data it shows)"
			}
			row.Status = Unmeasured
			row.Reasons = []string{reason}
			rep.Unmatched = append(rep.Unmatched, Dropped{Side: "reference", Key: rn.Key, Name: rn.Name, Op: rn.Op, Layer: row.Layer, Reason: reason})
			rep.Tensors = append(rep.Tensors, row)
			continue
		}
		on := otherNodes[m.Other]
		row.Other = &Counterpart{Key: on.Key, Name: on.Name, Op: on.Op, Ne: on.Ne, Match: m.How}
		if m.Note != "" {
			row.Notes = append(row.Notes, m.Note)
		}
		jobs = append(jobs, job{row: len(rep.Tensors), rn: rn, on: on})
		rep.Tensors = append(rep.Tensors, row)
	}

	// How many jobs read each of the other side's tensors; those no job
	// reads (unmatched, or matched to a filtered-out row) are released
	// before any is produced.
	refRel, _ := ref.(Releaser)
	otherRel, _ := other.(Releaser)
	readers := map[string]int{}
	for _, j := range jobs {
		readers[j.on.Key]++
	}
	// The scores of the selections (the router probabilities) are read
	// again when their selection is measured: kept until the end.
	pinRef, pinOther := map[string]bool{}, map[string]bool{}
	for _, sp := range sels {
		pinRef[sp.refScore], pinOther[sp.otherScore] = true, true
	}
	if otherRel != nil {
		for _, on := range otherNodes {
			if readers[on.Key] == 0 && !pinOther[on.Key] {
				otherRel.Release(on.Key)
			}
		}
	}

	// Measure the matched rows in parallel (each job reads its own two
	// tensors and fills its own row), in graph order so that a Side fed by
	// a running forward pass is consumed as it produces, then fold the
	// outcomes in graph order.
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// Releasing: a job's reference tensor once it is measured; the other
	// side's tensor once every job reading it is (a reference view without
	// its own counterpart reads its source's); of the failing rows only the
	// earliest, the first divergence, keeps its tensors.
	var relMu sync.Mutex
	keptFail := -1 // job index
	// done is called with relMu held when job k has been measured.
	done := func(k int) {
		readers[jobs[k].on.Key]--
		var drop []int
		if jobs[k].out.diverged && (keptFail < 0 || k < keptFail) {
			if keptFail >= 0 {
				drop = append(drop, keptFail)
			}
			keptFail = k
		} else {
			drop = append(drop, k)
		}
		for _, d := range drop {
			if refRel != nil && !pinRef[jobs[d].rn.Key] {
				refRel.Release(jobs[d].rn.Key)
			}
			key := jobs[d].on.Key
			if otherRel != nil && readers[key] == 0 && !pinOther[key] && (keptFail < 0 || jobs[keptFail].on.Key != key) {
				otherRel.Release(key)
			}
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(jobs)) {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(jobs) {
					return
				}
				j := &jobs[k]
				j.out = measureRow(&rep.Tensors[j.row], ref, other, j.rn, j.on, T, pol, nWorst, sels[j.rn.Key])
				relMu.Lock()
				done(k)
				relMu.Unlock()
			}
		})
	}
	wg.Wait()

	var sharedNF, partialRows, readErrs int
	firstShared := ""
	for _, j := range jobs {
		row := &rep.Tensors[j.row]
		if j.out.readErr {
			readErrs++
		}
		if opts.Rejudge != nil {
			if worst, ok := opts.Rejudge(row); ok {
				j.out.diverged, j.out.worst = row.Status == Fail, worst
			}
		}
		if j.out.diverged {
			noteFirstDivergence(row, rep, j.out.worst)
		}
		if row.Metrics != nil && row.Metrics.SharedNonFinite > 0 {
			sharedNF++
			if firstShared == "" {
				firstShared = nodeRef(row)
			}
		}
		if row.Partial {
			partialRows++
		}
	}
	for _, j := range al.UnmatchedOther {
		on := otherNodes[j]
		reason := "no reference node matches"
		if on.Unreadable != "" {
			reason = "cannot be read: " + on.Unreadable
		}
		rep.Unmatched = append(rep.Unmatched, Dropped{Side: "other", Key: on.Key, Name: on.Name, Op: on.Op, Layer: al.OtherLayers[j], Reason: reason})
	}
	unreadable, firstBad := 0, ""
	for _, nodes := range [][]Node{refNodes, otherNodes} {
		for _, n := range nodes {
			if n.Unreadable != "" {
				if unreadable == 0 {
					firstBad = n.Unreadable
				}
				unreadable++
			}
		}
	}
	if sharedNF > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("NaN/Inf at the same positions on both sides in %s (first: %s); shared NaN/Inf passes unless fail_shared_nonfinite is set", plural(sharedNF, "tensor"), firstShared))
	}
	if partialRows > 0 {
		rep.Warnings = append(rep.Warnings, plural(partialRows, "tensor")+" compared on a text log's printed elements and sums only")
	}
	if readErrs > 0 {
		rep.Warnings = append(rep.Warnings, plural(readErrs, "tensor")+" could not be read (see their rows)")
	}

	for _, r := range rep.Tensors {
		rep.Summary.Tensors++
		switch r.Status {
		case Pass:
			rep.Summary.Pass++
		case Fail:
			rep.Summary.Fail++
		case Unmeasured:
			rep.Summary.Unmeasured++
		case Skipped:
			rep.Summary.Skipped++
		}
	}
	rep.Summary.UnmatchedOther = len(al.UnmatchedOther)
	rep.Summary.Unreadable = unreadable
	switch {
	case rep.Summary.Fail > 0:
		rep.Verdict = VerdictFail
	case unreadable > 0:
		// A file that cannot be read leaves the comparison incomplete,
		// however well the rest agrees.
		rep.Verdict = VerdictUnmeasured
		rep.Warnings = append(rep.Warnings, UnreadableWarning(unreadable, firstBad))
	case rep.Summary.Pass > 0:
		rep.Verdict = VerdictPass
	default:
		rep.Verdict = VerdictUnmeasured
		rep.Warnings = append(rep.Warnings, "no tensor could be compared")
	}
	cov := CoverageOf(rep.Tensors)
	rep.Coverage = &cov
	if rep.Verdict == VerdictPass && cov.Low() {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("low coverage: %s, %d unmeasured: nothing is known of the unmeasured nodes (--min-coverage X fails a comparison covering less than X)", cov.Phrase(), cov.Unmeasured))
	}

	if d := rep.FirstDivergence; d != nil {
		bl := opts.Blamer
		if bl == nil {
			bl = FirstFail
		}
		env := &BlameEnv{Ref: ref, Other: other, RefNodes: refNodes, OtherNodes: otherNodes, Alignment: al, Rows: rep.Tensors, Policy: pol, Tokens: T}
		b, err := bl.Blame(d, env)
		switch {
		case err != nil:
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("blame: %v", err))
		case b != nil:
			rep.Blame = b
		}
	}
	return rep, nil
}

// UnreadableWarning is the report's warning for n files that cannot be
// read, the first for the reason given.
func UnreadableWarning(n int, first string) string {
	return fmt.Sprintf("%s cannot be read (first: %s): the comparison is incomplete, not a pass", plural(n, "file"), first)
}

// inferTokens takes T from the embedding node's shape {n_embd, T}.
func inferTokens(nodes []Node, aliases []Alias) int {
	for _, n := range nodes {
		base, _ := tensor.SplitName(n.Name)
		if canonicalBase(base, n.Op, aliases) == "inp_embd" {
			tr := tensor.Trim(n.Ne)
			if len(tr) == 2 && tr[1] > 0 && tr[1] <= math.MaxInt32 {
				return int(tr[1])
			}
			if len(tr) == 1 {
				return 1
			}
		}
	}
	return 0
}

// dataProblem checks that a tensor carries data consistent with its shape.
func dataProblem(t *tensor.Tensor) string {
	if t.Data == nil && t.Partial == nil {
		return "no data"
	}
	if t.Data != nil && int64(len(t.Data)) != tensor.Numel(t.Ne) {
		return fmt.Sprintf("%d values for shape %s (%d elements)", len(t.Data), fmtShape(t.Ne), tensor.Numel(t.Ne))
	}
	if t.Data == nil && t.Partial != nil && len(t.Partial.Index) != len(t.Partial.Values) {
		return fmt.Sprintf("partial data with %d indices but %d values", len(t.Partial.Index), len(t.Partial.Values))
	}
	return ""
}

// rowOutcome is what measuring a row tells the report beyond the row
// itself.
type rowOutcome struct {
	readErr  bool      // a tensor could not be read
	diverged bool      // the row failed: a first-divergence candidate
	worst    []Element // its worst elements
}

// measureRow fills a matched row: reads both tensors, plans the shape
// correspondence, measures and judges. It touches nothing but row, so rows
// can be measured concurrently.
func measureRow(row *Row, ref, other Side, rn, on Node, T int, pol *Policy, nWorst int, sel selSpec) rowOutcome {
	unmeasured := func(reason string) {
		row.Status = Unmeasured
		row.Reasons = append(row.Reasons, reason)
	}
	rt, err := ref.Tensor(rn.Key)
	if err != nil || rt == nil {
		unmeasured(fmt.Sprintf("cannot read reference tensor %s: %v", rn.Key, err))
		return rowOutcome{readErr: true}
	}
	ot, err := other.Tensor(on.Key)
	if err != nil || ot == nil {
		unmeasured(fmt.Sprintf("cannot read other tensor %s: %v", on.Key, err))
		return rowOutcome{readErr: true}
	}
	if p := dataProblem(rt); p != "" {
		unmeasured("reference has " + p)
		return rowOutcome{}
	}
	if p := dataProblem(ot); p != "" {
		unmeasured("other side has " + p)
		return rowOutcome{}
	}
	// Shapes from the tensors themselves (a Side's Nodes may be lighter).
	rn.Ne, on.Ne = rt.Ne, ot.Ne
	row.Ne = rt.Ne
	plan, err := PlanTransform(rn, on, T)
	if err != nil {
		row.Status = Fail
		row.Reasons = append(row.Reasons, err.Error())
		row.Tolerance = ptrTol(pol.ResolveNode(rn.Key, rn.Name, rn.Op))
		return rowOutcome{diverged: true}
	}
	row.Transform = plan.Kind
	if plan.Note != "" {
		row.Notes = append(row.Notes, plan.Note)
	}
	row.Tokens = plan.TokenCount
	tol := pol.ResolveNode(rn.Key, rn.Name, rn.Op)
	row.Tolerance = ptrTol(tol)
	lay := plan.Layout()

	var meas measurement
	switch {
	case rt.Data != nil && ot.Data != nil:
		a, b, l, note := plan.comparedPair(rt.Data, ot.Data, ot.Ne)
		if a == nil || int64(len(b)) != int64(len(a)) {
			unmeasured("internal: transformed data length mismatch")
			return rowOutcome{}
		}
		if note != "" {
			row.Notes = append(row.Notes, note)
		}
		lay = l
		meas = measureFull(a, b, lay, tol, nWorst)
		if tol.Logits {
			if nv := plan.Ne[0]; nv > 0 && int64(len(a))%nv == 0 {
				meas.Metrics.Logits = MeasureLogits(a, b, int(nv), plan.TokenBase, TieRule{Gap: float64(tol.NearTieGap), Explained: tol.NearTieExplained})
			}
		}
		if tol.Selection {
			meas.Metrics.Selection = selectionOf(ref, other, sel, a, b, plan.Ne, plan.TokenBase)
		}
	case rt.Data == nil && ot.Data != nil && plan.Kind == FirstCells:
		row.Partial = true
		unmeasured("the reference is partial; shape rule first-cells needs its full data")
		return rowOutcome{}
	case rt.Data == nil && ot.Data != nil:
		row.Partial = true
		b := plan.OtherData(ot.Data, ot.Ne)
		k := partialVsFull(rt.Partial, b)
		if plan.Kind == FirstRows && k.hasRefSum {
			k.hasRefSum = false
			row.Notes = append(row.Notes, "sum not checked: the printed sum covers the whole cache")
		}
		meas = measurePartial(k, lay, tol, nWorst)
	default:
		row.Partial = true
		if plan.Kind != SameShape && plan.Kind != Flat {
			unmeasured(fmt.Sprintf("the other side is partial; shape rule %s needs its full data", plan.Kind))
			return rowOutcome{}
		}
		var k *known
		if rt.Data != nil {
			k = fullVsPartial(rt.Data, ot.Partial)
		} else {
			k = partialVsPartial(rt.Partial, ot.Partial, plan.RefCount)
		}
		meas = measurePartial(k, lay, tol, nWorst)
	}
	row.Metrics = &meas.Metrics
	j := Judge(row.Metrics, tol)
	row.Status = j.Status
	row.Reasons = append(row.Reasons, j.Reasons...)
	row.Notes = append(row.Notes, j.Notes...)
	if j.Status != Fail {
		return rowOutcome{}
	}
	if tol.Selection && row.Metrics.Selection != nil {
		if ts := row.Metrics.Selection.Tokens; len(ts) > 0 {
			row.FirstFailToken = ts[0].Token
		}
		return rowOutcome{diverged: true, worst: meas.Worst}
	}
	// Per-token verdicts.
	logitFail := map[int]bool{}
	if tol.Logits && row.Metrics.Logits != nil {
		for _, t := range row.Metrics.Logits.Tokens {
			if logitTokenFails(t, tol) {
				logitFail[t.Token] = true
			}
		}
	}
	for i := range meas.PerToken {
		ts := &meas.PerToken[i]
		ts.Fail = tokenFails(*ts, tol, row.Partial) || logitFail[ts.Token]
		if ts.Fail && row.FirstFailToken < 0 {
			row.FirstFailToken = ts.Token
		}
	}
	if len(meas.PerToken) == 0 && len(logitFail) > 0 {
		for _, t := range row.Metrics.Logits.Tokens {
			if logitFail[t.Token] {
				row.FirstFailToken = t.Token
				break
			}
		}
	}
	row.PerToken = meas.PerToken
	return rowOutcome{diverged: true, worst: meas.Worst}
}

func ptrTol(t Tolerance) *Tolerance { return &t }

func noteFirstDivergence(row *Row, rep *Report, worst []Element) {
	if rep.FirstDivergence != nil {
		return
	}
	rep.FirstDivergence = &Divergence{Row: row.Index, Key: row.Key, Name: row.Name, Op: row.Op, Layer: row.Layer, Token: row.FirstFailToken,
		Reasons: append([]string(nil), row.Reasons...)}
	rep.Worst = worst
}

// plural formats a count with a noun, adding "s" unless the count is 1.
// nodeRef names a row readably in a warning: `#21 CPY " (copy)"`, its
// graph index, op and quoted key, since llama.cpp names some nodes with
// only a suffix (an empty name plus " (copy)").
func nodeRef(row *Row) string {
	op, key := row.Op, row.Key
	if op == "" {
		op = "?"
	}
	if key == "" {
		key = row.Name
	}
	return fmt.Sprintf("#%d %s %q", row.Index, op, key)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
