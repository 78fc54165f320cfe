package pipeline

import (
	"fmt"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// ModeIsolation names, in reports, the judgement of compare --model: each
// of the other side's ops by isolation.
const ModeIsolation = "isolation"

// ModelCompareOptions configure CompareModel.
type ModelCompareOptions struct {
	// CompareOptions.Policy measures the end-to-end drift (Row.Drift) and
	// judges the rows that cannot be isolated; nil means the f64 mode's.
	CompareOptions
	// Prompt, Tokens and NoBOS give the token ids when the reference does
	// not record them (as for Run).
	Prompt string
	Tokens []int32
	NoBOS  bool
	// Kernels is the kernel profile of the ggml recomputation; "" chooses
	// the reference's own (ChooseKernels).
	Kernels string
	Threads int
	// HashModel checks the model by its full SHA-256 (see RunOptions).
	HashModel bool
}

// IsLlamaCpp reports whether a source was recorded by llama.cpp: a dump or
// log that names llama.cpp's build (its system_info). A directory of .npy
// files, or a dump a third-party engine wrote, is not.
func IsLlamaCpp(src reference.Source) bool {
	info := src.Describe()
	return info.SystemInfo != ""
}

// CompareModel compares the other side with the reference and judges each
// of its ops by isolation: layerdiff recomputes the op from the other
// side's own inputs with the model's weights, in exact arithmetic (the
// bound is a float engine's round-off of that op) and in llama.cpp's CPU
// arithmetic; the op passes when either reproduces the other side's
// tensor. The end-to-end difference from the reference is kept as each
// row's drift. The reference is isolated the same way, as a check of the
// model and the tokens.
func CompareModel(ref, other reference.Source, modelPath string, o ModelCompareOptions) (*compare.Report, error) {
	f, err := gguf.Open(modelPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkStructure(ref, f); err != nil {
		return nil, err
	}
	if err := checkStructure(other, f); err != nil {
		return nil, err
	}
	limit := int64(FullHashBytes)
	ri, oi := ref.Describe(), other.Describe()
	ident, err := checkModel(ri, f, o.HashModel, limit)
	if err != nil {
		return nil, err
	}
	m, err := forward.Load(f)
	if err != nil {
		return nil, err
	}
	warn := append([]string(nil), o.Warnings...)
	if ident.warning != "" {
		warn = append(warn, ident.warning)
	}
	info := ri
	if len(info.Tokens) == 0 {
		info.Tokens = oi.Tokens
	}
	toks, err := runTokens(f, info, RunOptions{Prompt: o.Prompt, Tokens: o.Tokens, NoBOS: o.NoBOS})
	if err != nil {
		return nil, err
	}
	// The other side is isolated with its own tokens (they are its
	// inputs too); tokens other than the reference's fail its embedding.
	etoks, embKey := otherTokens(other, toks, bosID(f))
	tokenFault := ""
	if !sameTokens(etoks, toks) {
		tokenFault = fmt.Sprintf("the other side evaluated other tokens than the reference: %v, not %v", etoks, toks)
	}
	// llama.cpp's arithmetic in the other side's kernels when it is
	// llama.cpp, else in the reference's
	profileOf := ri.SystemInfo
	if IsLlamaCpp(other) {
		profileOf = oi.SystemInfo
	}
	kc, err := ChooseKernels(o.Kernels, reference.KernelProfile(profileOf))
	if err != nil {
		return nil, err
	}
	T := len(toks)

	// The other side, in exact arithmetic and in llama.cpp's.
	exact, err := isolate(other, m, etoks, engineOptions(other, ri, o.Threads, true, ""), isolationBase(), exactBound(T))
	if err != nil {
		return nil, fmt.Errorf("isolating %s (exact arithmetic): %w", oi.Path, err)
	}
	ggmlOpts := engineOptions(other, ri, o.Threads, false, kc.Emulated)
	ggml, err := isolate(other, m, etoks, ggmlOpts, isolationBase(), ggmlBound(T, reference.KernelProfile(oi.SystemInfo), kc.Emulated))
	if err != nil {
		return nil, fmt.Errorf("isolating %s (llama.cpp's arithmetic): %w", oi.Path, err)
	}
	// The reference, as a check.
	if hasFullData(ref.Nodes()) {
		rkc, err := ChooseKernels(o.Kernels, reference.KernelProfile(ri.SystemInfo))
		if err == nil {
			ro := engineOptions(ref, ri, o.Threads, false, rkc.Emulated)
			if ub, err := microBatches(ri.Path, ref.Nodes(), T); err == nil {
				ro.UBatches = ub
			}
			riso, err := isolate(ref, m, toks, ro, isolationBase(), ggmlBound(T, rkc.Reference, rkc.Emulated))
			if err != nil {
				warn = append(warn, fmt.Sprintf("the reference could not be isolated: %v", err))
			} else {
				warn = append(warn, refIsolationSummary(riso, ri.Path)...)
			}
		}
	}

	pol := o.Policy
	if pol == nil {
		pol = compare.MustPolicy(compare.ModeF64)
	}
	ij := &isoJudge{exact: exact, ggml: ggml, embKey: embKey, tokenFault: tokenFault}
	meta := compare.Meta{Reference: sourceMeta(ref, ""), Other: sourceMeta(other, "other"), Tokens: toks, Prompt: ri.Prompt, Tool: o.Tool}
	if meta.Prompt == "" {
		meta.Prompt = o.Prompt
	}
	blamer := o.Blamer
	if blamer == nil {
		blamer = &engineBlamer{judge: ij, model: m, tokens: etoks, refTokens: toks, other: other, T: len(etoks)}
	}
	// Rows for the other side's ops the reference lacks: attention
	// recomputed from a flash-attention reference's Q and cache views,
	// else rows judged by isolation alone.
	derived, dw := withDerivedAttention(ref, nodeNames(other))
	warn = append(warn, dw...)
	refRows := withPlaceholders(derived, other, exact)
	rep, err := compare.Compare(SideOf(refRows), SideOf(other), compare.Options{
		Policy: pol, Meta: meta, Filter: o.Filter, Blamer: blamer, Warnings: append(append(warn, ri.Warnings...), oi.Warnings...),
		Rejudge: ij.rejudge,
	})
	if err != nil {
		return nil, err
	}
	rep.Meta.Mode = ModeIsolation
	rep.Warnings = append(rep.Warnings, ij.summary()...)
	nameAdvice(rep, "other", oi.Path)
	return rep, nil
}

// otherTokens returns the tokens the other side evaluated — those it
// records, else the reference's without a leading BOS when its embedding
// has one row fewer, else the reference's — and the key of its embedding
// node ("" when it has none).
func otherTokens(other reference.Source, toks []int32, bos int32) ([]int32, string) {
	emb := ""
	var embNe []int64
	for _, n := range other.Nodes() {
		if base, _ := tensor.SplitName(n.Name); base == "inp_embd" || n.Op == "GET_ROWS" {
			emb, embNe = n.Key, tensor.Trim(n.Ne)
			break
		}
	}
	if ot := other.Describe().Tokens; len(ot) > 0 {
		return ot, emb
	}
	if len(embNe) == 2 && embNe[1] == int64(len(toks)-1) && len(toks) > 1 && toks[0] == bos {
		return toks[1:], emb
	}
	return toks, emb
}

// engineOptions are the forward options of a side's isolation: exact
// arithmetic with a float32 cache, or llama.cpp's with the side's cache
// type and kernels; flash attention as the side's graph has it (off when
// it recorded attention scores, so that layerdiff's graph has them too).
func engineOptions(side reference.Source, refInfo reference.Info, threads int, exact bool, kernels string) forward.Options {
	fo := forward.DefaultOptions()
	fo.Threads = threads
	fo.FlashAttn = sideFlashAttn(side, refInfo)
	if exact {
		fo.Numerics, fo.KVType = forward.NumericsF64, quant.F32
		return fo
	}
	fo.Kernels = kernels
	if refKVType(side) == "f32" {
		fo.KVType = quant.F32
	}
	return fo
}

// sideFlashAttn decides the attention graph of a side's isolation: off
// when the side has llama.cpp's unfused attention nodes (kq, kq_soft_max,
// kqv), on when it has FLASH_ATTN_EXT; for llama.cpp itself as its dump
// says, else as the reference's; for another engine off (the unfused graph
// names each attention op, so a fault in one is blamed there).
func sideFlashAttn(side reference.Source, refInfo reference.Info) bool {
	for _, n := range side.Nodes() {
		base, _ := tensor.SplitName(n.Name)
		switch {
		case base == "kq" || base == "kq_soft_max" || base == "kqv":
			return false
		case n.Op == "FLASH_ATTN_EXT" || base == "__fattn__":
			return true
		}
	}
	if !IsLlamaCpp(side) {
		return false
	}
	if fa := side.Describe().FlashAttn; fa != "" {
		return fa != "off"
	}
	return refInfo.FlashAttn != "off"
}

// isolationBase is the policy isolation bounds refine: the ggml mode's
// logits and shared-NaN rules.
func isolationBase() *compare.Policy {
	p := compare.MustPolicy(compare.ModeGGML)
	p.Mode = ModeIsolation
	delete(p.Names, "inp_embd")
	return p
}

// exactBound judges a side's node against the exact recomputation by the
// round-off of a float engine computing in the node's stored type.
func exactBound(T int) boundFunc {
	return func(n forward.Node, sn reference.NodeInfo, lookup func(int, string) ([]int64, quant.Type, bool)) *compare.Override {
		o := floatBound(n, lookup, T, unitOf(sn.Type)).tolerance()
		return &o
	}
}

// ggmlBound judges a side's node against the recomputation in llama.cpp's
// arithmetic by the cross-kernel bound of that op (docs/tolerance.md).
func ggmlBound(T int, profile, emulated string) boundFunc {
	return func(n forward.Node, sn reference.NodeInfo, lookup func(int, string) ([]int64, quant.Type, bool)) *compare.Override {
		ni := reference.NodeInfo{Key: sn.Key, Name: n.Name, Op: n.Op, Ne: tensor.Trim(n.Ne[:]), Src: n.SrcNames, Type: n.Type.String()}
		lk := func(name string) ([]int64, quant.Type, bool) { return lookup(n.Index, name) }
		o := crossBoundOf(ni, lk, T, profile, emulated).tolerance()
		return &o
	}
}

// refIsolationSummary says whether llama.cpp's own ops were reproduced
// from its own inputs: they are when the model and tokens are the ones it
// ran (and its kernels are emulated or bounded).
func refIsolationSummary(iso *isolation, path string) []string {
	s := iso.rep.Summary
	if s.Fail == 0 {
		if s.Pass > 0 {
			return []string{fmt.Sprintf("the reference's own ops: %d of %d reproduced by layerdiff from the reference's inputs", s.Pass, s.Pass+s.Fail)}
		}
		return nil
	}
	d := iso.rep.FirstDivergence
	return []string{fmt.Sprintf("the reference's own ops are not all reproduced from its inputs (%d of %d fail, first %s): check that %s was made from this model and these tokens", s.Fail, s.Pass+s.Fail, d.Name+" ("+d.Op+")", path)}
}

// isoJudge judges the rows of the main comparison by the other side's
// isolation.
type isoJudge struct {
	exact, ggml *isolation
	// tokenFault, when set, fails the other side's embedding (embKey):
	// it evaluated other tokens than the reference.
	embKey, tokenFault string
	judged             int // rows judged by isolation
	byExact            int // of which passed in exact arithmetic
	byGGML             int // ... in llama.cpp's
	notIsolated        int // rows with a counterpart layerdiff could not isolate
}

// pick returns the isolation row a main row is judged by.
func (j *isoJudge) pick(key string) (*compare.Row, string, *compare.Row) {
	ex, gg := j.exact.byKey[key], j.ggml.byKey[key]
	measured := func(r *compare.Row) bool {
		return r != nil && (r.Status == compare.Pass || r.Status == compare.Fail)
	}
	switch {
	case measured(ex) && ex.Status == compare.Pass:
		return ex, "exact", gg
	case measured(gg) && gg.Status == compare.Pass:
		return gg, "ggml", ex
	case measured(ex):
		return ex, "exact", gg
	case measured(gg):
		return gg, "ggml", ex
	}
	return nil, "", nil
}

func (j *isoJudge) rejudge(row *compare.Row) ([]compare.Element, bool) {
	if row.Other == nil || row.Status == compare.Skipped {
		return nil, false
	}
	r, arith, alt := j.pick(row.Other.Key)
	if r == nil {
		j.notIsolated++
		if row.Status == compare.Pass || row.Status == compare.Fail {
			row.Notes = append(row.Notes, "not isolated (layerdiff's graph has no op to recompute it): judged end to end")
		}
		return nil, false
	}
	j.judged++
	if row.Metrics == nil && row.Status == compare.Unmeasured {
		row.Reasons = nil
		row.Notes = append(row.Notes, "the reference has no such node (a flash-attention graph has no kq, kq_soft_max, kqv): judged by isolation alone")
	}
	iso := &compare.Isolation{Arithmetic: arith}
	src := j.exact
	if arith == "ggml" {
		src = j.ggml
	}
	for _, n := range src.chain[row.Other.Key] {
		iso.Chain = append(iso.Chain, n.Name+" ("+n.Op+")")
	}
	if alt != nil && alt.Metrics != nil {
		v := alt.Metrics.NMSE
		iso.OtherNMSE = &v
	}
	row.Drift = row.Metrics
	row.Metrics, row.Tolerance, row.Status = r.Metrics, r.Tolerance, r.Status
	row.Tokens, row.FirstFailToken, row.PerToken = r.Tokens, r.FirstFailToken, r.PerToken
	row.Isolation = iso
	what := "exact arithmetic, within a float engine's round-off"
	if arith == "ggml" {
		what = "llama.cpp's CPU arithmetic"
	}
	row.Reasons = nil
	switch r.Status {
	case compare.Pass:
		if arith == "ggml" {
			j.byGGML++
		} else {
			j.byExact++
		}
		row.Notes = append(row.Notes, "isolation: reproduced from the other side's own inputs ("+what+")")
	default:
		row.Reasons = append(row.Reasons, "isolation: not reproduced from the other side's own inputs ("+what+")")
		row.Reasons = append(row.Reasons, r.Reasons...)
		if len(iso.Chain) > 0 {
			row.Reasons = append(row.Reasons, fmt.Sprintf("the other side did not record this op's inputs: layerdiff computed %s from its last recorded tensors; the fault is in one of these ops", strings.Join(iso.Chain, ", ")))
		}
	}
	if j.tokenFault != "" && row.Other.Key == j.embKey {
		row.Status = compare.Fail
		row.Reasons = append([]string{j.tokenFault}, row.Reasons...)
	}
	var worst []compare.Element
	if d := src.rep.FirstDivergence; d != nil && d.Row < len(src.rep.Tensors) && src.rep.Tensors[d.Row].Other != nil && src.rep.Tensors[d.Row].Other.Key == row.Other.Key {
		worst = src.rep.Worst
	}
	return worst, true
}

// summary is the report's line on how the rows were judged.
func (j *isoJudge) summary() []string {
	if j.judged == 0 {
		return []string{"no op of the other side could be isolated (no recorded tensor matches layerdiff's graph): every row is judged end to end"}
	}
	s := fmt.Sprintf("judged by isolation: %d ops recomputed from the other side's own inputs (%d reproduced in exact arithmetic, %d in llama.cpp's)", j.judged, j.byExact, j.byGGML)
	if j.notIsolated > 0 {
		s += fmt.Sprintf("; %d matched rows not isolated, judged end to end", j.notIsolated)
	}
	return []string{s}
}

// QuantizationHint explains a first divergence at a MUL_MAT whose NMSE is
// the size of llama.cpp's Q8 activation quantization (1e-7 to 1e-3) when
// the other side is not llama.cpp: a float engine is expected to differ
// that much, and --model (isolation) or --mode f64 judges it.
func QuantizationHint(rep *compare.Report, engine bool) {
	d := rep.FirstDivergence
	if !engine || d == nil || d.Row >= len(rep.Tensors) || !strings.Contains(d.Op, "MUL_MAT") {
		return
	}
	m := rep.Tensors[d.Row].Metrics
	if m == nil || m.NMSE <= 1e-8 || m.NMSE > 1e-3 {
		return
	}
	h := compare.Hint{Kind: "activation-quantization", Value: m.NMSE,
		Text: fmt.Sprintf("%s (%s) differs by nmse %s: the size of llama.cpp's CPU matmul arithmetic, which quantizes activations to Q8_0/Q8_K (and rounds K/V to f16), against a float engine, not of a wrong op; give --model M.gguf to judge each op by isolation, or --mode f64", d.Name, d.Op, compare.FormatFloat(float64(m.NMSE), 2))}
	if rep.Blame == nil {
		return
	}
	rep.Blame.Hints = append([]compare.Hint{h}, rep.Blame.Hints...)
}

// placeholders is a reference with a node without data for each of the
// other side's isolated nodes the reference has no counterpart of (its
// attention scores against a flash-attention reference, say), so that
// those ops are rows, judged by isolation, instead of being left out.
type placeholders struct {
	reference.Source
	nodes []reference.NodeInfo
	extra map[string]reference.NodeInfo // the placeholders, by key
}

func (p *placeholders) Nodes() []reference.NodeInfo { return p.nodes }

func (p *placeholders) Load(key string) (*tensor.Tensor, error) {
	if n, ok := p.extra[key]; ok {
		return &tensor.Tensor{Key: n.Key, Name: n.Name, Op: n.Op, Ne: n.Ne}, nil
	}
	return p.Source.Load(key)
}

// withPlaceholders returns ref with placeholders for the other side's
// nodes that iso measured and no reference node matches, each after the
// reference node matching the nearest earlier matched node of the other
// side; ref itself when there are none.
func withPlaceholders(ref, other reference.Source, iso *isolation) reference.Source {
	rs, os := SideOf(ref), SideOf(other)
	on := os.Nodes()
	al := compare.Align(rs.Nodes(), on, compare.DefaultAliases)
	refOf := make([]int, len(on)) // other index -> matching reference index
	for i := range refOf {
		refOf[i] = -1
	}
	for i, m := range al.Matches {
		if m.Other >= 0 && refOf[m.Other] < 0 {
			refOf[m.Other] = i
		}
	}
	refNodes := ref.Nodes()
	keys := map[string]bool{}
	for _, n := range refNodes {
		keys[n.Key] = true
	}
	after := map[int][]reference.NodeInfo{} // reference index (−1: before all) -> placeholders
	extra := map[string]reference.NodeInfo{}
	last := -1
	for j, n := range on {
		if refOf[j] >= 0 {
			last = refOf[j]
			continue
		}
		r := iso.byKey[n.Key]
		ours, ok := iso.ours[n.Key]
		if r == nil || !ok || r.Metrics == nil || (r.Status != compare.Pass && r.Status != compare.Fail) {
			continue
		}
		key := n.Key
		for k := 2; keys[key]; k++ {
			key = fmt.Sprintf("%s (engine %d)", n.Key, k)
		}
		// listed as having data, so that the row is measured (Load gives
		// none) and then judged by isolation
		ph := reference.NodeInfo{Key: key, Name: n.Name, Op: ours.Op, Ne: n.Ne, Type: "f32", Data: reference.FullData}
		keys[key], extra[key] = true, ph
		after[last] = append(after[last], ph)
	}
	if len(extra) == 0 {
		return ref
	}
	out := append([]reference.NodeInfo(nil), after[-1]...)
	for i, n := range refNodes {
		out = append(out, n)
		out = append(out, after[i]...)
	}
	return &placeholders{Source: ref, nodes: out, extra: extra}
}
