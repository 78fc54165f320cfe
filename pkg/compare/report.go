package compare

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// SchemaVersion is the version of the JSON report schema (docs/report-json.md).
// It changes only when a field changes meaning or is removed.
const SchemaVersion = 1

// Verdict is the outcome of a whole comparison.
type Verdict string

// Verdicts.
const (
	// VerdictPass: at least one tensor was compared and none failed.
	VerdictPass Verdict = "pass"
	// VerdictFail: at least one tensor failed, or the coverage is below
	// the minimum RequireCoverage asked for (Coverage.BelowMin).
	VerdictFail Verdict = "fail"
	// VerdictUnmeasured: nothing could be compared (no tensor matched, or no
	// reference data): not a pass.
	VerdictUnmeasured Verdict = "unmeasured"
)

// Report is the result of Compare, the one value every renderer prints.
// Its JSON form is the stable contract documented in docs/report-json.md.
type Report struct {
	Schema  int     `json:"schema"`
	Verdict Verdict `json:"verdict"`
	Meta    Meta    `json:"meta"`
	Summary Summary `json:"summary"`
	// Coverage says how much of the reference was measured; reports saved
	// before it existed get it counted from their rows by ReadJSON.
	Coverage *Coverage `json:"coverage"`
	// FirstDivergence is the first failing tensor in graph order; nil when
	// none failed.
	FirstDivergence *Divergence `json:"first_divergence"`
	// Blame is the node a Blamer holds responsible; nil when none failed.
	Blame *Blame `json:"blame"`
	// Worst are the largest differences of the first divergent tensor,
	// largest first.
	Worst []Element `json:"worst"`
	// Tensors has one row per reference node, in graph order.
	Tensors []Row `json:"tensors"`
	// Unmatched lists nodes without a counterpart: reference nodes (also
	// rows with status unmeasured) and the other side's nodes (not rows).
	Unmatched []Dropped `json:"unmatched"`
	// Skipped lists reference nodes the caller's filter dropped.
	Skipped  []Dropped `json:"skipped"`
	Warnings []string  `json:"warnings"`
	// Policy is the tolerance policy the rows were judged with.
	Policy *Policy `json:"policy,omitempty"`
}

// Meta describes what was compared.
type Meta struct {
	Reference Source `json:"reference"`
	Other     Source `json:"other"`
	// Tokens are the prompt's token ids, when known.
	Tokens []int32 `json:"tokens,omitempty"`
	Prompt string  `json:"prompt,omitempty"`
	// NTokens is the prompt length T used for per-token slicing (0 unknown).
	NTokens int `json:"n_tokens"`
	// Mode is the tolerance policy's mode.
	Mode string `json:"mode"`
	// Tool identifies the program that wrote the report ("layerdiff v0.1").
	Tool string `json:"tool,omitempty"`
	// Created is a timestamp the caller may set; renderers print it only
	// when present, so golden files stay deterministic.
	Created string `json:"created,omitempty"`
}

// Source describes one side of a comparison.
type Source struct {
	// Label names the engine: "llama.cpp ec98e2002", "layerdiff forward
	// pass (ggml numerics, kernels x86-avx2)".
	Label string `json:"label"`
	// Format is how the tensors were obtained: a file format with its
	// version ("layerdiff-dump v1", "llama.cpp eval-callback log (…)",
	// "directory of .npy files"), or "forward" for layerdiff's forward
	// pass.
	Format string `json:"format,omitempty"`
	// Producer names the program that wrote the files when known and not
	// the engine itself: "layerdiff 0.1.0 (built-in dumper)",
	// "layerdiff-dump.c 3 (standalone C dumper)", or a third-party
	// manifest's producer ("my-engine 0.3 (layerdiff capture/python 1)").
	Producer    string `json:"producer,omitempty"`
	Path        string `json:"path,omitempty"`
	Model       string `json:"model,omitempty"`
	ModelSHA256 string `json:"model_sha256,omitempty"`
	// ModelFingerprint is reference.ModelFingerprint of the model file
	// ("v1:" and 64 hex digits), when recorded or computed.
	ModelFingerprint string `json:"model_fingerprint,omitempty"`
	// Kernels is the kernel profile of the side's arithmetic: for a
	// reference the one its system_info names ("x86-avx512", "unknown"),
	// for layerdiff's forward pass the one it emulated.
	Kernels string `json:"kernels,omitempty"`
}

// Summary counts rows by status.
type Summary struct {
	Tensors    int `json:"tensors"`
	Pass       int `json:"pass"`
	Fail       int `json:"fail"`
	Unmeasured int `json:"unmeasured"`
	Skipped    int `json:"skipped"`
	// UnmatchedOther counts the other side's nodes no reference node uses.
	UnmatchedOther int `json:"unmatched_other"`
}

// Divergence locates the first failing tensor.
type Divergence struct {
	Row   int    `json:"row"` // index into Report.Tensors
	Key   string `json:"key"`
	Name  string `json:"name"`
	Op    string `json:"op"`
	Layer int    `json:"layer"`
	// Token is the first prompt position whose slice fails, −1 when the
	// tensor has no token axis or no single token fails.
	Token   int      `json:"token"`
	Reasons []string `json:"reasons"`
}

// Blame names the node held responsible for the first divergence.
type Blame struct {
	Key      string   `json:"key"`
	Name     string   `json:"name"`
	Op       string   `json:"op"`
	Layer    int      `json:"layer"`
	Evidence []string `json:"evidence"`
	// By names the Blamer ("first-fail", "recompute").
	By string `json:"by"`
	// Hints are tested hypotheses about what makes the blamed node differ
	// (a sign flip, a RoPE mode, an RMS epsilon); only those whose test
	// succeeded are listed. Absent when none did.
	Hints []Hint `json:"hints,omitempty"`
}

// Hint is one diagnosis hypothesis whose test succeeded, with the numbers
// the test measured: a residual NMSE and, for fitted quantities, the value
// fitted to each side next to the model's.
type Hint struct {
	// Kind names the hypothesis: "sign-flip", "scale", "swapped-halves",
	// "transposed", "permuted", "position-shift", "f16-rounding",
	// "rope-mode", "rope-base", "rope-freq-scale", "rope-position",
	// "rope-freq-factors", "rms-eps", "weight-transposed", "bos",
	// "token-shift", "token-mismatch", "kernel-difference",
	// "softmax-scale", "gqa-mapping", "activation",
	// "activation-quantization" (docs/report-json.md describes each
	// test).
	Kind string `json:"kind"`
	// Text states the finding and its numbers in one sentence.
	Text string `json:"text"`
	// Value is the hint's number: the fitted factor (scale, sign-flip),
	// the quantity fitted to the reference (rope-base, rope-freq-scale,
	// rms-eps, rope-mode), a position offset (position-shift,
	// rope-position, bos, token-shift), a count of positions
	// (token-mismatch); 0 when the kind has none.
	Value Float `json:"value"`
	// Ours is the same quantity fitted to the other side, and Model the
	// model's value of it; absent when they do not apply.
	Ours  *Float `json:"ours,omitempty"`
	Model *Float `json:"model,omitempty"`
	// NMSE is the residual of the hypothesis: the NMSE between the output
	// it explains and its prediction (0 when exact).
	NMSE Float `json:"nmse"`
	// Baseline is the NMSE the hypothesis improves on: the other side
	// against the reference, or the prediction with the model's own
	// parameters.
	Baseline Float `json:"baseline"`
}

// Row is the comparison of one reference node.
type Row struct {
	Index int     `json:"index"` // position in the reference graph
	Key   string  `json:"key"`
	Name  string  `json:"name"`
	Op    string  `json:"op"`
	Layer int     `json:"layer"` // −1 outside layers
	Ne    []int64 `json:"ne"`
	// Other is the matched node on the other side; nil when unmatched.
	Other *Counterpart `json:"other,omitempty"`
	// Transform is the shape rule used (see PlanTransform): "same", "flat",
	// "last-rows", "first-rows", "gqa-heads"; "" when not compared.
	Transform string `json:"transform,omitempty"`
	// Tokens is the number of token slices compared (0: no token axis).
	Tokens int `json:"tokens"`
	// Partial is true when a side is a text log (printed elements only).
	Partial bool   `json:"partial,omitempty"`
	Status  Status `json:"status"`
	// Reasons say why the row failed, or why it is unmeasured or skipped.
	Reasons []string `json:"reasons,omitempty"`
	// Notes are alignment and shape notes and facts about passing rows.
	Notes     []string   `json:"notes,omitempty"`
	Metrics   *Metrics   `json:"metrics,omitempty"`
	Tolerance *Tolerance `json:"tolerance,omitempty"`
	// FirstFailToken is the first failing token position, −1 if none.
	FirstFailToken int `json:"first_fail_token"`
	// PerToken holds per-token statistics, kept for failing rows only.
	PerToken []TokenStat `json:"per_token,omitempty"`
	// Isolation, set when the row was judged by isolation (compare
	// --model), says how the other side's op fared when layerdiff
	// recomputed it from the other side's own inputs; Metrics and
	// Tolerance are then the isolation's, and Drift is the other side's
	// end-to-end difference from the reference.
	Isolation *Isolation `json:"isolation,omitempty"`
	Drift     *Metrics   `json:"drift,omitempty"`
}

// Isolation is the outcome of recomputing the other side's op from the
// other side's own inputs with layerdiff's ops and the model's weights.
type Isolation struct {
	// Arithmetic is the recomputation the row was judged by: "exact"
	// (float64, the tolerance a float32 engine's round-off) or "ggml"
	// (llama.cpp's CPU arithmetic, as the reference's kernels do it).
	Arithmetic string `json:"arithmetic"`
	// Chain lists the ops (name (OP)) layerdiff computed itself between
	// the other side's recorded tensors and this one, when the other side
	// did not record this op's direct inputs (a sparse dump): the fault,
	// if any, is in one of them.
	Chain []string `json:"chain,omitempty"`
	// Other is the other arithmetic's NMSE, when it was measured.
	OtherNMSE *Float `json:"other_nmse,omitempty"`
}

// Counterpart is the other side's node matched to a row.
type Counterpart struct {
	Key   string  `json:"key"`
	Name  string  `json:"name"`
	Op    string  `json:"op,omitempty"`
	Ne    []int64 `json:"ne"`
	Match string  `json:"match"` // Match.How
}

// Dropped is a node left out of the comparison.
type Dropped struct {
	Side   string `json:"side"` // "reference" or "other"
	Key    string `json:"key"`
	Name   string `json:"name"`
	Op     string `json:"op,omitempty"`
	Layer  int    `json:"layer"`
	Reason string `json:"reason"`
}

// normalized returns a shallow copy of r whose list fields are non-nil, so
// that they encode as [] and a report read back encodes identically.
func (r *Report) normalized() *Report {
	c := *r
	if c.Coverage == nil {
		cov := CoverageOf(c.Tensors)
		c.Coverage = &cov
	}
	if c.Worst == nil {
		c.Worst = []Element{}
	}
	if c.Tensors == nil {
		c.Tensors = []Row{}
	}
	if c.Unmatched == nil {
		c.Unmatched = []Dropped{}
	}
	if c.Skipped == nil {
		c.Skipped = []Dropped{}
	}
	if c.Warnings == nil {
		c.Warnings = []string{}
	}
	if c.FirstDivergence != nil && c.FirstDivergence.Reasons == nil {
		d := *c.FirstDivergence
		d.Reasons = []string{}
		c.FirstDivergence = &d
	}
	if c.Blame != nil && c.Blame.Evidence == nil {
		b := *c.Blame
		b.Evidence = []string{}
		c.Blame = &b
	}
	return &c
}

// WriteJSON writes r as indented JSON (docs/report-json.md) followed by a
// newline.
func WriteJSON(w io.Writer, r *Report) error {
	b, err := json.MarshalIndent(r.normalized(), "", "  ")
	if err != nil {
		return fmt.Errorf("compare: encode report: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("compare: write report: %w", err)
	}
	return nil
}

// maxReportBytes bounds what ReadJSON accepts.
const maxReportBytes = 1 << 30

// ReadJSON reads a report written by WriteJSON (for `layerdiff report
// --in`). Unknown fields are ignored (a newer writer may add some); a
// schema newer than SchemaVersion is an error. name is used in error
// messages.
func ReadJSON(rd io.Reader, name string) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxReportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("compare: read report %s: %w", name, err)
	}
	if len(data) > maxReportBytes {
		return nil, fmt.Errorf("compare: report %s: larger than %d bytes", name, maxReportBytes)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("compare: report %s: offset %d: %w", name, se.Offset, err)
		case errors.As(err, &te):
			return nil, fmt.Errorf("compare: report %s: offset %d: field %s: %w", name, te.Offset, te.Field, err)
		}
		return nil, fmt.Errorf("compare: report %s: %w", name, err)
	}
	if r.Schema == 0 {
		return nil, fmt.Errorf("compare: report %s: no \"schema\" field: not a layerdiff report", name)
	}
	if r.Schema > SchemaVersion {
		return nil, fmt.Errorf("compare: report %s: schema %d is newer than this layerdiff understands (%d)", name, r.Schema, SchemaVersion)
	}
	switch r.Verdict {
	case VerdictPass, VerdictFail, VerdictUnmeasured:
	default:
		return nil, fmt.Errorf("compare: report %s: verdict %q is not pass, fail or unmeasured", name, r.Verdict)
	}
	for i := range r.Tensors {
		switch r.Tensors[i].Status {
		case Pass, Fail, Unmeasured, Skipped:
		default:
			return nil, fmt.Errorf("compare: report %s: tensors[%d] (%s): status %q is invalid", name, i, r.Tensors[i].Name, r.Tensors[i].Status)
		}
	}
	if d := r.FirstDivergence; d != nil && (d.Row < 0 || d.Row >= len(r.Tensors)) {
		return nil, fmt.Errorf("compare: report %s: first_divergence.row %d outside tensors (%d rows)", name, d.Row, len(r.Tensors))
	}
	if c := r.Coverage; c == nil {
		cov := CoverageOf(r.Tensors)
		r.Coverage = &cov
	} else if c.Nodes < 0 || c.Measured < 0 || c.Measured > c.Nodes || math.IsNaN(float64(c.Min)) || c.Min < 0 || c.Min > 1 {
		return nil, fmt.Errorf("compare: report %s: coverage: measured %d of %d nodes, min %v: inconsistent", name, c.Measured, c.Nodes, float64(c.Min))
	}
	return &r, nil
}

// ModelsDiffer tells whether the two sides were made from different model
// files: by "sha256" when both record one, else by "fingerprint"
// (reference.ModelFingerprint) when both record that; "" when they agree
// or cannot be told apart. a and b are the reference's and the other
// side's value.
func (m Meta) ModelsDiffer() (how, a, b string) {
	if a, b := m.Reference.ModelSHA256, m.Other.ModelSHA256; a != "" && b != "" {
		if a != b {
			return "sha256", a, b
		}
		return "", "", ""
	}
	if a, b := m.Reference.ModelFingerprint, m.Other.ModelFingerprint; a != "" && b != "" && a != b {
		return "fingerprint", a, b
	}
	return "", "", ""
}
