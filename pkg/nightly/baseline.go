package nightly

// The baseline record: its file format (docs/nightly.md, "Baseline
// files"), how a report condenses into one, reading and writing it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/internal/atomicfile"
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// Schema is the version of the baseline file format. It changes
// only when a field changes meaning or is removed.
const Schema = 1

// maxBaselineBytes bounds what ReadBaseline and ReadCellCheck accept.
const maxBaselineBytes = 64 << 20

// VerdictError is the verdict of a cell that could not be run (the
// fixture, dump or run failed): a baseline may record it, with the message.
const VerdictError compare.Verdict = "error"

// Baseline is the committed record of one nightly cell (docs/nightly.md,
// "Baseline files").
type Baseline struct {
	Schema int    `json:"schema"`
	Cell   string `json:"cell"`
	// Verdict is the verdict of the recorded result, or VerdictError.
	Verdict compare.Verdict `json:"verdict"`
	// Error is the message of a cell that could not be run (verdict
	// "error"), with the cache directory removed from paths.
	Error string `json:"error,omitempty"`
	// Mode is the tolerance policy's mode the statuses were judged with.
	Mode string `json:"mode"`
	// FirstDivergence is "name (OP, layer L)" of the first failing tensor,
	// empty when none failed. Informational.
	FirstDivergence string `json:"first_divergence,omitempty"`
	// Prompt, NTokens, ModelSHA256 and SystemInfo describe what was run;
	// the check warns (and does not fail) when they differ.
	Prompt      string `json:"prompt,omitempty"`
	NTokens     int    `json:"n_tokens,omitempty"`
	ModelSHA256 string `json:"model_sha256,omitempty"`
	SystemInfo  string `json:"system_info,omitempty"`
	// Kernels is the kernel profile of that system_info
	// (reference.KernelProfile): the baseline holds for references of
	// this profile.
	Kernels string `json:"kernels,omitempty"`
	// Tensors has one entry per report row, in graph order.
	Tensors []BaselineTensor `json:"tensors"`
}

// BaselineTensor is one report row in a baseline. NMSE and MaxAbs are nil
// when the row had no metrics (unmeasured or skipped). A bit-exact row is
// written without them (both are 0) and read back with them.
type BaselineTensor struct {
	// Name is the row's unique key (the node name, "name#N" for repeats).
	Name   string         `json:"name"`
	Status compare.Status `json:"status"`
	// Exact: every compared element was bit-identical. Omitted when false.
	Exact  bool           `json:"exact,omitempty"`
	NMSE   *compare.Float `json:"nmse,omitempty"`
	MaxAbs *compare.Float `json:"max_abs,omitempty"`
}

// NewBaseline condenses a report into a baseline for cell. ref, when not
// nil, supplies the CPU description of the reference run.
func NewBaseline(cell string, rep *compare.Report, ref *reference.Info) *Baseline {
	b := &Baseline{
		Schema: Schema, Cell: cell, Verdict: rep.Verdict, Mode: rep.Meta.Mode,
		Prompt: rep.Meta.Prompt, NTokens: rep.Meta.NTokens,
		ModelSHA256: rep.Meta.Other.ModelSHA256,
		Tensors:     make([]BaselineTensor, 0, len(rep.Tensors)),
	}
	if b.ModelSHA256 == "" {
		b.ModelSHA256 = rep.Meta.Reference.ModelSHA256
	}
	if ref != nil {
		b.SystemInfo = strings.TrimSpace(ref.SystemInfo)
		b.Kernels = reference.KernelProfile(ref.SystemInfo)
	}
	if d := rep.FirstDivergence; d != nil {
		b.FirstDivergence = divergenceText(d)
	}
	for i := range rep.Tensors {
		row := &rep.Tensors[i]
		t := BaselineTensor{Name: row.Key, Status: row.Status}
		if m := row.Metrics; m != nil {
			t.Exact = rowExact(row)
			nmse, maxAbs := roundUp(float64(m.NMSE)), roundUp(float64(m.MaxAbs))
			t.NMSE, t.MaxAbs = &nmse, &maxAbs
		}
		b.Tensors = append(b.Tensors, t)
	}
	return b
}

// divergenceText is "name (OP, layer L)", or "name (OP)" outside layers.
func divergenceText(d *compare.Divergence) string {
	if d.Layer < 0 {
		return fmt.Sprintf("%s (%s)", d.Name, d.Op)
	}
	return fmt.Sprintf("%s (%s, layer %d)", d.Name, d.Op, d.Layer)
}

// rowExact reports whether every compared element of a full (not text-log)
// row was bit-identical.
func rowExact(row *compare.Row) bool {
	m := row.Metrics
	return m != nil && !row.Partial && m.N > 0 && m.BitIdentical == m.N
}

// roundUp rounds a metric up to 4 significant digits, so baselines stay
// short and never understate the recorded error: for v > 0 the result r
// satisfies v ≤ r ≤ v·(1+1.5e-3). Zero, NaN and ±Inf are kept.
func roundUp(v float64) compare.Float {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return compare.Float(v)
	}
	// Scaling by 1.001 before rounding to nearest (relative error ≤ 5e-4)
	// keeps the result ≥ v: (1+1e-3)(1−5e-4) > 1.
	s := strconv.FormatFloat(v*1.001, 'g', 4, 64)
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(r, 0) || math.Abs(r) < math.Abs(v) {
		return compare.Float(v)
	}
	return compare.Float(r)
}

// WriteBaseline writes b in its compact form: the header fields one per
// line, then one line per tensor, so that baselines diff well.
func WriteBaseline(w io.Writer, b *Baseline) error {
	var buf bytes.Buffer
	buf.WriteString("{\n")
	field := func(k string, v any) {
		j, _ := json.Marshal(v) // strings, ints and verdicts cannot fail
		fmt.Fprintf(&buf, "  %q: %s,\n", k, j)
	}
	field("schema", b.Schema)
	field("cell", b.Cell)
	field("verdict", b.Verdict)
	if b.Error != "" {
		field("error", b.Error)
	}
	if b.Mode != "" {
		field("mode", b.Mode)
	}
	if b.FirstDivergence != "" {
		field("first_divergence", b.FirstDivergence)
	}
	if b.Prompt != "" {
		field("prompt", b.Prompt)
	}
	if b.NTokens > 0 {
		field("n_tokens", b.NTokens)
	}
	if b.ModelSHA256 != "" {
		field("model_sha256", b.ModelSHA256)
	}
	if b.SystemInfo != "" {
		field("system_info", b.SystemInfo)
	}
	if b.Kernels != "" {
		field("kernels", b.Kernels)
	}
	buf.WriteString("  \"tensors\": [")
	for i, t := range b.Tensors {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n    ")
		writeBaselineTensor(&buf, t)
	}
	if len(b.Tensors) > 0 {
		buf.WriteString("\n  ")
	}
	buf.WriteString("]\n}\n")
	_, err := w.Write(buf.Bytes())
	return err
}

// writeBaselineTensor writes t as one line of JSON, its metrics in the
// shortest form that round-trips (5.369e-05, not 0.00005369).
func writeBaselineTensor(buf *bytes.Buffer, t BaselineTensor) {
	name, _ := json.Marshal(t.Name) // a string cannot fail
	status, _ := json.Marshal(t.Status)
	fmt.Fprintf(buf, `{"name":%s,"status":%s`, name, status)
	if t.Exact {
		buf.WriteString(`,"exact":true`)
		if t.NMSE != nil && *t.NMSE == 0 && t.MaxAbs != nil && *t.MaxAbs == 0 {
			buf.WriteByte('}')
			return
		}
	}
	for _, m := range []struct {
		k string
		v *compare.Float
	}{{"nmse", t.NMSE}, {"max_abs", t.MaxAbs}} {
		if m.v == nil {
			continue
		}
		fmt.Fprintf(buf, `,%q:`, m.k)
		v := float64(*m.v)
		switch {
		case math.IsNaN(v):
			buf.WriteString(`"NaN"`)
		case math.IsInf(v, 1):
			buf.WriteString(`"+Inf"`)
		case math.IsInf(v, -1):
			buf.WriteString(`"-Inf"`)
		default:
			buf.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	buf.WriteByte('}')
}

// ReadBaseline reads and validates a baseline file; name is used in error
// messages.
func ReadBaseline(rd io.Reader, name string) (*Baseline, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxBaselineBytes+1))
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", name, err)
	}
	if len(data) > maxBaselineBytes {
		return nil, fmt.Errorf("baseline %s: larger than %d bytes", name, maxBaselineBytes)
	}
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, jsonError("baseline", name, err)
	}
	if b.Schema == 0 {
		return nil, fmt.Errorf("baseline %s: no \"schema\" field: not a layerdiff baseline", name)
	}
	if b.Schema > Schema {
		return nil, fmt.Errorf("baseline %s: schema %d is newer than this layerdiff understands (%d)", name, b.Schema, Schema)
	}
	if b.Cell == "" {
		return nil, fmt.Errorf("baseline %s: no \"cell\" field: not a layerdiff baseline", name)
	}
	if !validVerdict(b.Verdict) && b.Verdict != VerdictError {
		return nil, fmt.Errorf("baseline %s: verdict %q is not pass, fail, unmeasured or error", name, b.Verdict)
	}
	if (b.Verdict == VerdictError) != (b.Error != "") {
		return nil, fmt.Errorf("baseline %s: verdict %q with error %q: an error message goes with verdict \"error\" and only with it", name, b.Verdict, b.Error)
	}
	if b.NTokens < 0 {
		return nil, fmt.Errorf("baseline %s: n_tokens %d is negative", name, b.NTokens)
	}
	seen := make(map[string]int, len(b.Tensors))
	for i, t := range b.Tensors {
		if t.Name == "" {
			return nil, fmt.Errorf("baseline %s: tensors[%d]: empty name", name, i)
		}
		if j, dup := seen[t.Name]; dup {
			return nil, fmt.Errorf("baseline %s: tensors[%d]: name %q repeats tensors[%d]", name, i, t.Name, j)
		}
		seen[t.Name] = i
		if t.Exact && t.NMSE == nil && t.MaxAbs == nil {
			zero := compare.Float(0)
			b.Tensors[i].NMSE, b.Tensors[i].MaxAbs = &zero, &zero
		}
		if !validStatus(t.Status) {
			return nil, fmt.Errorf("baseline %s: tensors[%d] (%s): status %q is invalid", name, i, t.Name, t.Status)
		}
		for _, m := range []struct {
			k string
			v *compare.Float
		}{{"nmse", t.NMSE}, {"max_abs", t.MaxAbs}} {
			if m.v != nil && float64(*m.v) < 0 {
				return nil, fmt.Errorf("baseline %s: tensors[%d] (%s): %s %v is negative", name, i, t.Name, m.k, float64(*m.v))
			}
		}
	}
	return &b, nil
}

func validVerdict(v compare.Verdict) bool {
	switch v {
	case compare.VerdictPass, compare.VerdictFail, compare.VerdictUnmeasured:
		return true
	}
	return false
}

func validStatus(s compare.Status) bool {
	switch s {
	case compare.Pass, compare.Fail, compare.Unmeasured, compare.Skipped:
		return true
	}
	return false
}

// jsonError adds the file and, for syntax and type errors, the offset.
func jsonError(what, name string, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("%s %s: offset %d: %w", what, name, se.Offset, err)
	case errors.As(err, &te):
		return fmt.Errorf("%s %s: offset %d: field %s: %w", what, name, te.Offset, te.Field, err)
	}
	return fmt.Errorf("%s %s: %w", what, name, err)
}

// Update records in as the baseline file in.Baseline (atomically, creating
// its directory) and returns the baseline written: the result condensed by
// NewBaseline, or a cell that could not be run with its message.
func Update(in *Input) (*Baseline, error) {
	var b *Baseline
	if in.Result != nil {
		b = NewBaseline(in.Cell, in.Result, in.Ref)
	} else {
		b = &Baseline{Schema: Schema, Cell: in.Cell, Verdict: VerdictError, Error: in.Error, Tensors: []BaselineTensor{}}
	}
	if err := os.MkdirAll(filepath.Dir(in.Baseline), 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(in.Baseline, func(w io.Writer) error { return WriteBaseline(w, b) }); err != nil {
		return nil, err
	}
	return b, nil
}

// LoadResult reads a saved report and checks that its rows have the
// unique keys baselines are indexed by.
func LoadResult(path string) (*compare.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep, err := compare.ReadJSON(f, path)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]int, len(rep.Tensors))
	for i, row := range rep.Tensors {
		if row.Key == "" {
			return nil, fmt.Errorf("result %s: tensors[%d] has no key: not a layerdiff run/compare report", path, i)
		}
		if j, dup := seen[row.Key]; dup {
			return nil, fmt.Errorf("result %s: tensors[%d]: key %q repeats tensors[%d]", path, i, row.Key, j)
		}
		seen[row.Key] = i
	}
	return rep, nil
}

// LoadBaseline reads and validates the baseline file at path (ReadBaseline);
// a missing file is an error that matches os.ErrNotExist.
func LoadBaseline(path string) (*Baseline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadBaseline(f, path)
}
