package compare

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Status is the outcome for one tensor.
type Status string

// The four states of a tensor row.
const (
	// Pass: measured and within tolerance.
	Pass Status = "pass"
	// Fail: measured and outside tolerance (or its shape cannot correspond
	// to the reference's).
	Fail Status = "fail"
	// Unmeasured: the reference (or the other side) lacks the tensor or its
	// data, so nothing was compared. Missing data is never a failure.
	Unmeasured Status = "unmeasured"
	// Skipped: filtered out by the caller.
	Skipped Status = "skipped"
)

// Label is the upper-case form used in text output ("PASS").
func (s Status) Label() string { return strings.ToUpper(string(s)) }

// Tolerance decides whether one measured tensor passes. A tensor passes iff
// every enabled criterion holds:
//
//  1. no NonFiniteMismatch (a NaN or ±Inf on one side only, or infinities of
//     opposite sign, always fail), and no SharedNonFinite either when
//     FailSharedNonFinite is set;
//  2. NMSE ≤ NMSEMax (full tensors; +Inf disables it);
//  3. Mismatches ≤ MismatchFracMax·N, where an element mismatches when
//     |a−b| > ATol + ATolRMS·rms(a) + RTol·|a| (a is the reference; for a
//     text log's printed values the printed half-quantum is added);
//  4. if BitExact: every position BitIdentical (full tensors), or every
//     known element equal at printed precision (partial tensors);
//  5. the SumCheck, when a side is a text log with a printed sum;
//  6. if Logits: for every token the argmax agrees or the reference's top-2
//     gap is below NearTieGap (or, with NearTieExplained, at most the sum of
//     the two tokens' |a−b|), and every token's KL ≤ KLMax (+Inf disables).
//
// NaN is not a valid value for any field. The same criteria, restricted to a
// token's slice, decide which tokens fail (except the sum check, which has
// no per-token form).
type Tolerance struct {
	NMSEMax         Float `json:"nmse_max"`
	ATol            Float `json:"atol"`
	ATolRMS         Float `json:"atol_rms"`
	RTol            Float `json:"rtol"`
	MismatchFracMax Float `json:"mismatch_frac_max"`
	BitExact        bool  `json:"bit_exact"`
	// Logits measures the tensor as logits {n_vocab, T} (argmax, top-5, KL).
	Logits     bool  `json:"logits"`
	NearTieGap Float `json:"near_tie_gap"`
	// NearTieExplained also counts a flip as a near tie when the
	// reference's top-2 gap is at most the sum of |a−b| at the two tokens
	// involved (see TieRule); on in f64 mode.
	NearTieExplained bool  `json:"near_tie_explained,omitempty"`
	KLMax            Float `json:"kl_max"`
	// FailSharedNonFinite makes NaN (or the same infinity) at the same
	// position on both sides a failure. Off by default: both engines agree
	// there, so it is a fact about the model or the input, reported as a
	// warning, not a divergence between the engines.
	FailSharedNonFinite bool `json:"fail_shared_nonfinite"`
	// Selection judges the tensor as a selection (an ARGSORT of the
	// router's probabilities in a mixture of experts; selection.go): per
	// token the first k indices must agree; the numeric criteria 2-4 do
	// not apply.
	Selection bool `json:"selection,omitempty"`
}

// Override changes some fields of a Tolerance; nil fields keep the value
// they override. Its JSON form uses the same names as Tolerance.
type Override struct {
	NMSEMax             *Float `json:"nmse_max,omitempty"`
	ATol                *Float `json:"atol,omitempty"`
	ATolRMS             *Float `json:"atol_rms,omitempty"`
	RTol                *Float `json:"rtol,omitempty"`
	MismatchFracMax     *Float `json:"mismatch_frac_max,omitempty"`
	BitExact            *bool  `json:"bit_exact,omitempty"`
	Logits              *bool  `json:"logits,omitempty"`
	NearTieGap          *Float `json:"near_tie_gap,omitempty"`
	NearTieExplained    *bool  `json:"near_tie_explained,omitempty"`
	KLMax               *Float `json:"kl_max,omitempty"`
	FailSharedNonFinite *bool  `json:"fail_shared_nonfinite,omitempty"`
	Selection           *bool  `json:"selection,omitempty"`
}

// Apply returns t with o's set fields replacing t's.
func (o Override) Apply(t Tolerance) Tolerance {
	setF := func(dst *Float, src *Float) {
		if src != nil {
			*dst = *src
		}
	}
	setB := func(dst *bool, src *bool) {
		if src != nil {
			*dst = *src
		}
	}
	setF(&t.NMSEMax, o.NMSEMax)
	setF(&t.ATol, o.ATol)
	setF(&t.ATolRMS, o.ATolRMS)
	setF(&t.RTol, o.RTol)
	setF(&t.MismatchFracMax, o.MismatchFracMax)
	setB(&t.BitExact, o.BitExact)
	setB(&t.Logits, o.Logits)
	setF(&t.NearTieGap, o.NearTieGap)
	setB(&t.NearTieExplained, o.NearTieExplained)
	setF(&t.KLMax, o.KLMax)
	setB(&t.FailSharedNonFinite, o.FailSharedNonFinite)
	setB(&t.Selection, o.Selection)
	return t
}

// merge returns o with p's set fields replacing o's.
func (o Override) merge(p Override) Override {
	if p.NMSEMax != nil {
		o.NMSEMax = p.NMSEMax
	}
	if p.ATol != nil {
		o.ATol = p.ATol
	}
	if p.ATolRMS != nil {
		o.ATolRMS = p.ATolRMS
	}
	if p.RTol != nil {
		o.RTol = p.RTol
	}
	if p.MismatchFracMax != nil {
		o.MismatchFracMax = p.MismatchFracMax
	}
	if p.BitExact != nil {
		o.BitExact = p.BitExact
	}
	if p.Logits != nil {
		o.Logits = p.Logits
	}
	if p.NearTieGap != nil {
		o.NearTieGap = p.NearTieGap
	}
	if p.NearTieExplained != nil {
		o.NearTieExplained = p.NearTieExplained
	}
	if p.KLMax != nil {
		o.KLMax = p.KLMax
	}
	if p.FailSharedNonFinite != nil {
		o.FailSharedNonFinite = p.FailSharedNonFinite
	}
	if p.Selection != nil {
		o.Selection = p.Selection
	}
	return o
}

func (o Override) floats() map[string]*Float {
	return map[string]*Float{"nmse_max": o.NMSEMax, "atol": o.ATol, "atol_rms": o.ATolRMS, "rtol": o.RTol,
		"mismatch_frac_max": o.MismatchFracMax, "near_tie_gap": o.NearTieGap, "kl_max": o.KLMax}
}

// Policy maps every tensor to its Tolerance: Default, then the Ops entries
// for its op (general to specific: "GLU", "SWIGLU", "GLU(SWIGLU)"), then the
// Names entries for its base name, canonical base name (see Align) and full
// name, then the Keys entry for its node key, then Force (command-line
// flags) last.
type Policy struct {
	// Mode names the policy in reports: "ggml", "f64", "bitexact", or the
	// name a policy file gives.
	Mode    string              `json:"mode"`
	Default Tolerance           `json:"default"`
	Ops     map[string]Override `json:"ops,omitempty"`
	Names   map[string]Override `json:"names,omitempty"`
	// Keys are per-node overrides by reference node key, for tolerances
	// computed from each node's own shape (the cross-kernel policy of
	// docs/tolerance.md). They are not written to JSON: every row carries
	// its resolved tolerance.
	Keys  map[string]Override `json:"-"`
	Force Override            `json:"force"`
}

// Policy modes with built-in defaults.
const (
	// ModeGGML: the other side replicates ggml's CPU arithmetic, so only
	// summation order may differ.
	ModeGGML = "ggml"
	// ModeF64: the other side computes in float64 without ggml's activation
	// quantization, f16 KV cache or f16 flash-attention accumulator.
	ModeF64 = "f64"
	// ModeBitExact: every element must have the same bits.
	ModeBitExact = "bitexact"
)

// Modes lists the built-in policy modes.
func Modes() []string { return []string{ModeGGML, ModeF64, ModeBitExact} }

func fp(v float64) *Float { f := Float(v); return &f }
func bp(v bool) *bool     { return &v }

// DefaultPolicy returns the built-in policy of a mode (see Modes). The
// numbers are documented, with their reasoning, in docs/tolerance.md; they
// are starting points to be replaced by measured ones (docs/numerics.md).
//
//	mode      nmse_max  atol  atol_rms  rtol  mismatch_frac_max  near_tie_gap
//	ggml      1e-10     0     1e-4      1e-4  0                  1e-4
//	f64       1e-3      0     0.25      0.05  1e-3               0.1
//	bitexact  0         0     0         0     0 (bit_exact)      0
//
// All modes measure result_output as logits, leave kl_max at +Inf (KL is
// reported, not judged) and let shared NaN pass. f64 mode also counts a
// flipped argmax as a near tie when the two logits' differences account for
// it (near_tie_explained). ggml mode expects the
// embedding lookup (inp_embd, a pure dequantization) to be bit-exact.
func DefaultPolicy(mode string) (*Policy, error) {
	inf := Float(math.Inf(1))
	p := &Policy{Mode: mode, Names: map[string]Override{"result_output": {Logits: bp(true)}}, Ops: map[string]Override{}}
	switch mode {
	case ModeGGML:
		p.Default = Tolerance{NMSEMax: 1e-10, ATolRMS: 1e-4, RTol: 1e-4, NearTieGap: 1e-4, KLMax: inf}
		p.Names["inp_embd"] = Override{BitExact: bp(true)}
	case ModeF64:
		p.Default = Tolerance{NMSEMax: 1e-3, ATolRMS: 0.25, RTol: 0.05, MismatchFracMax: 1e-3, NearTieGap: 0.1, NearTieExplained: true, KLMax: inf}
	case ModeBitExact:
		p.Default = Tolerance{BitExact: true, KLMax: inf}
	default:
		return nil, fmt.Errorf("compare: unknown tolerance mode %q (want one of %s)", mode, strings.Join(Modes(), ", "))
	}
	if mode != ModeBitExact {
		// mixtures of experts: the expert selection is judged as one
		p.Ops["ARGSORT"] = Override{Selection: bp(true)}
	}
	return p, nil
}

// MustPolicy is DefaultPolicy for a mode known to exist; it panics
// otherwise (a programming error).
func MustPolicy(mode string) *Policy {
	p, err := DefaultPolicy(mode)
	if err != nil {
		panic(err)
	}
	return p
}

// Clone returns a deep copy of p.
func (p *Policy) Clone() *Policy {
	q := *p
	q.Ops = make(map[string]Override, len(p.Ops))
	for k, v := range p.Ops {
		q.Ops[k] = v
	}
	q.Names = make(map[string]Override, len(p.Names))
	for k, v := range p.Names {
		q.Names[k] = v
	}
	if p.Keys != nil {
		q.Keys = make(map[string]Override, len(p.Keys))
		for k, v := range p.Keys {
			q.Keys[k] = v
		}
	}
	return &q
}

// SetATol forces atol for every tensor (the --atol flag).
func (p *Policy) SetATol(v float64) { p.Force.ATol = fp(v) }

// SetRTol forces rtol for every tensor (the --rtol flag).
func (p *Policy) SetRTol(v float64) { p.Force.RTol = fp(v) }

// SetNMSEMax forces nmse_max for every tensor.
func (p *Policy) SetNMSEMax(v float64) { p.Force.NMSEMax = fp(v) }

// ResolveNode returns the tolerance for the reference node key (name, op):
// Resolve's, with the node's Keys entry applied before Force.
func (p *Policy) ResolveNode(key, name, op string) Tolerance {
	o, ok := p.Keys[key]
	if !ok {
		return p.Resolve(name, op)
	}
	return p.Force.Apply(o.Apply(p.resolve(name, op)))
}

// Resolve returns the tolerance for a node.
func (p *Policy) Resolve(name, op string) Tolerance {
	return p.Force.Apply(p.resolve(name, op))
}

// resolve is Resolve without Force.
func (p *Policy) resolve(name, op string) Tolerance {
	t := p.Default
	for _, k := range opKeys(op) {
		if o, ok := p.Ops[k]; ok {
			t = o.Apply(t)
		}
	}
	base, _ := tensor.SplitName(name)
	seen := map[string]bool{}
	for _, k := range []string{base, canonicalBase(base, op, DefaultAliases), name} {
		if seen[k] {
			continue
		}
		seen[k] = true
		if o, ok := p.Names[k]; ok {
			t = o.Apply(t)
		}
	}
	return t
}

// opKeys lists the Ops keys that apply to op, general first:
// "GLU(SWIGLU)" → GLU, SWIGLU, GLU(SWIGLU); "SWIGLU" → GLU, SWIGLU;
// "UNARY(GELU)" → UNARY, GELU, UNARY(GELU).
func opKeys(op string) []string {
	if op == "" {
		return nil
	}
	if i := strings.IndexByte(op, '('); i > 0 && strings.HasSuffix(op, ")") {
		return []string{op[:i], op[i+1 : len(op)-1], op}
	}
	if gluOps[op] {
		return []string{"GLU", op}
	}
	return []string{op}
}

// gluOps are the names ggml_op_desc prints for GGML_OP_GLU nodes.
var gluOps = map[string]bool{"REGLU": true, "GEGLU": true, "SWIGLU": true, "SWIGLU_OAI": true, "GEGLU_ERF": true, "GEGLU_QUICK": true}

// policyFile is the JSON form of a tolerance file.
type policyFile struct {
	Base    string              `json:"base"`
	Mode    string              `json:"mode"`
	Default Override            `json:"default"`
	Ops     map[string]Override `json:"ops"`
	Names   map[string]Override `json:"names"`
}

// ReadPolicy reads a tolerance file (JSON, documented in
// docs/tolerance.md): the built-in policy named by "base" (default "ggml")
// with "default", "ops" and "names" overrides merged field by field. name is
// used in error messages.
func ReadPolicy(r io.Reader, name string) (*Policy, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<24))
	if err != nil {
		return nil, fmt.Errorf("compare: read tolerance file %s: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f policyFile
	if err := dec.Decode(&f); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("compare: tolerance file %s: offset %d: %w", name, se.Offset, err)
		case errors.As(err, &te):
			return nil, fmt.Errorf("compare: tolerance file %s: offset %d: field %s: %w", name, te.Offset, te.Field, err)
		}
		return nil, fmt.Errorf("compare: tolerance file %s: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("compare: tolerance file %s: offset %d: trailing data after the JSON object", name, dec.InputOffset())
	}
	base := f.Base
	if base == "" {
		base = ModeGGML
	}
	p, err := DefaultPolicy(base)
	if err != nil {
		return nil, fmt.Errorf("compare: tolerance file %s: base: %w", name, err)
	}
	if f.Mode != "" {
		p.Mode = f.Mode
	}
	check := func(where string, o Override) error {
		for field, v := range o.floats() {
			if v == nil {
				continue
			}
			if x := float64(*v); math.IsNaN(x) || x < 0 {
				return fmt.Errorf("compare: tolerance file %s: %s.%s = %v: must be ≥ 0 (use \"+Inf\" to disable)", name, where, field, x)
			}
		}
		return nil
	}
	if err := check("default", f.Default); err != nil {
		return nil, err
	}
	p.Default = f.Default.Apply(p.Default)
	for _, k := range sortedKeys(f.Ops) {
		if err := check("ops."+k, f.Ops[k]); err != nil {
			return nil, err
		}
		p.Ops[k] = p.Ops[k].merge(f.Ops[k])
	}
	for _, k := range sortedKeys(f.Names) {
		if err := check("names."+k, f.Names[k]); err != nil {
			return nil, err
		}
		p.Names[k] = p.Names[k].merge(f.Names[k])
	}
	return p, nil
}

// LoadPolicy reads a tolerance file from disk (see ReadPolicy).
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	defer f.Close()
	return ReadPolicy(f, path)
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// Judgement is the outcome of Judge.
type Judgement struct {
	Status Status
	// Reasons say why a tensor failed, one criterion per string.
	Reasons []string
	// Notes are facts worth showing on a passing row (shared NaN).
	Notes []string
}

// Judge applies tol (see Tolerance) to m, which must have been measured with
// the same tol (Mismatches and the sum limit depend on its elementwise
// bound). A tensor with nothing measured (N = 0 and no sum) is Unmeasured.
func Judge(m *Metrics, tol Tolerance) Judgement {
	if m.N == 0 && m.Sum == nil {
		return Judgement{Status: Unmeasured, Reasons: []string{"no elements to compare"}}
	}
	partial := m.ULP == nil
	var j Judgement
	fail := func(format string, a ...any) { j.Reasons = append(j.Reasons, fmt.Sprintf(format, a...)) }
	if m.NonFiniteMismatch > 0 {
		fail("%d positions NaN/Inf on one side only (reference %d NaN, %d Inf; other %d NaN, %d Inf)",
			m.NonFiniteMismatch, m.RefNaN, m.RefInf, m.OtherNaN, m.OtherInf)
	}
	if m.SharedNonFinite > 0 {
		if tol.FailSharedNonFinite {
			fail("%d positions NaN/Inf on both sides (fail_shared_nonfinite)", m.SharedNonFinite)
		} else {
			j.Notes = append(j.Notes, fmt.Sprintf("%d positions NaN/Inf on both sides (excluded from the metrics)", m.SharedNonFinite))
		}
	}
	if tol.Selection && m.Selection != nil {
		if m.Selection.Differ > 0 {
			fail("%s", selectionReason(m.Selection))
		}
		if len(j.Reasons) > 0 {
			j.Status = Fail
		} else {
			j.Status = Pass
		}
		return j
	}
	if tol.BitExact {
		if partial {
			if bad := m.Finite - m.WithinQuantum; bad > 0 {
				fail("bit-exact: %d of %d printed elements differ beyond the printed precision", bad, m.N)
			}
		} else if m.FirstDiff != nil {
			e := m.FirstDiff
			fail("bit-exact: %d of %d elements differ; first at %s (flat %d): reference %s (0x%08x), other %s (0x%08x)",
				m.N-m.BitIdentical, m.N, fmtCoord(e.Coord), e.Index, FormatFloat(float64(e.Ref), 9), math.Float32bits(float32(e.Ref)),
				FormatFloat(float64(e.Other), 9), math.Float32bits(float32(e.Other)))
		}
	}
	if !partial && float64(m.NMSE) > float64(tol.NMSEMax) {
		a, b := formatVs(float64(m.NMSE), float64(tol.NMSEMax))
		fail("nmse %s > %s", a, b)
	}
	if float64(m.Mismatches) > float64(tol.MismatchFracMax)*float64(m.N) {
		bound := "|a−b| ≤ " + FormatFloat(float64(m.Bound), 3) + " + " + FormatFloat(float64(tol.RTol), -1) + "·|a|"
		if partial {
			bound += " + " + FormatFloat(float64(m.Quantum)/2, -1) + " (printed precision)"
		}
		fail("%d of %d elements outside %s (allowed %s)", m.Mismatches, m.N, bound, allowed(tol, m.N))
	}
	if m.Sum != nil && !m.Sum.OK {
		a, b := FormatPair(float64(m.Sum.Ref), float64(m.Sum.Other), 6)
		fail("sum %s vs %s: |Δ| %s > %s", a, b, FormatFloat(float64(m.Sum.Diff), 3), FormatFloat(float64(m.Sum.Limit), 3))
	}
	if tol.Logits && m.Logits != nil {
		var bad []string
		for _, t := range m.Logits.Tokens {
			if t.RefArgmax != t.OtherArgmax && !t.NearTie {
				bad = append(bad, fmt.Sprintf("token %d: %d vs %d (gap %s)", t.Token, t.RefArgmax, t.OtherArgmax, FormatFloat(float64(t.Gap), 3)))
			}
		}
		if len(bad) > 0 {
			more := ""
			if len(bad) > 3 {
				more = fmt.Sprintf(" and %d more", len(bad)-3)
				bad = bad[:3]
			}
			fail("argmax differs beyond near-ties (gap ≥ %s): %s%s", FormatFloat(float64(tol.NearTieGap), -1), strings.Join(bad, "; "), more)
		}
		if kl := float64(m.Logits.MaxKL); kl > float64(tol.KLMax) || (math.IsNaN(kl) && !math.IsInf(float64(tol.KLMax), 1)) {
			a, b := formatVs(kl, float64(tol.KLMax))
			fail("max KL %s > %s", a, b)
		}
	}
	if len(j.Reasons) > 0 {
		j.Status = Fail
	} else {
		j.Status = Pass
	}
	return j
}

func allowed(tol Tolerance, n int64) string {
	if tol.MismatchFracMax == 0 {
		return "0"
	}
	return fmt.Sprintf("%s·%d = %s", FormatFloat(float64(tol.MismatchFracMax), -1), n, FormatFloat(float64(tol.MismatchFracMax)*float64(n), 4))
}

// tokenFails applies the per-token form of tol to one token's statistics.
func tokenFails(ts TokenStat, tol Tolerance, partial bool) bool {
	switch {
	case ts.NonFiniteMismatch > 0:
		return true
	case !partial && float64(ts.NMSE) > float64(tol.NMSEMax):
		return true
	case float64(ts.Mismatches) > float64(tol.MismatchFracMax)*float64(ts.N):
		return true
	case tol.BitExact && ts.BitDiff > 0:
		return true
	}
	return false
}

// logitTokenFails reports whether token t fails the logits criteria.
func logitTokenFails(t TokenLogits, tol Tolerance) bool {
	if t.RefArgmax != t.OtherArgmax && !t.NearTie {
		return true
	}
	kl := float64(t.KL)
	return kl > float64(tol.KLMax) || (math.IsNaN(kl) && !math.IsInf(float64(tol.KLMax), 1))
}
