// Package nightlytest holds the test material that package nightly's tests
// and the CLI's `layerdiff baseline` tests share: a small report to hold
// against baselines, and a file writer.
package nightlytest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

// Row is a report row with metrics: nmse, max |a−b| and whether the
// tensor is bit-exact (64 elements).
func Row(key string, status compare.Status, nmse, maxAbs float64, exact bool) compare.Row {
	const n = 64
	m := &compare.Metrics{N: n, Finite: n, NMSE: compare.Float(nmse), MaxAbs: compare.Float(maxAbs)}
	if exact {
		m.BitIdentical = n
	} else {
		m.BitIdentical = n - 3
	}
	r := compare.Row{Key: key, Name: strings.SplitN(key, "#", 2)[0], Op: "MUL_MAT", Layer: 0, Ne: []int64{8, 8}, Status: status, Metrics: m, FirstFailToken: -1}
	if status == compare.Fail {
		r.Reasons = []string{"nmse " + strconv.FormatFloat(nmse, 'g', 4, 64) + " > 1e-10"}
	}
	return r
}

// Report is a small report: inp_embd (exact), ffn_out-0 (error 1e-6)
// twice, result_output (error 1e-4), and an unmeasured row.
func Report() *compare.Report {
	r := &compare.Report{
		Schema: compare.SchemaVersion, Verdict: compare.VerdictPass,
		Meta: compare.Meta{
			Reference: compare.Source{Label: "llama.cpp", ModelSHA256: "aaaa"},
			Other:     compare.Source{Label: "layerdiff forward (f64)", ModelSHA256: "aaaa"},
			Prompt:    "The quick brown fox", NTokens: 11, Mode: "f64",
		},
		Tensors: []compare.Row{
			Row("inp_embd", compare.Pass, 0, 0, true),
			Row("ffn_out-0", compare.Pass, 1e-6, 1e-3, false),
			Row("ffn_out-0#2", compare.Pass, 1e-6, 1e-3, false),
			Row("result_output", compare.Pass, 1e-4, 0.02, false),
			{Key: "cache_k_l0", Name: "cache_k_l0", Op: "CPY", Status: compare.Unmeasured, Reasons: []string{"no data"}, FirstFailToken: -1},
		},
	}
	Resummarize(r)
	return r
}

// Resummarize recomputes the summary, verdict and first divergence after a
// test changed rows.
func Resummarize(r *compare.Report) {
	r.Summary = compare.Summary{Tensors: len(r.Tensors)}
	r.FirstDivergence = nil
	for i, row := range r.Tensors {
		switch row.Status {
		case compare.Pass:
			r.Summary.Pass++
		case compare.Fail:
			r.Summary.Fail++
			if r.FirstDivergence == nil {
				r.FirstDivergence = &compare.Divergence{Row: i, Key: row.Key, Name: row.Name, Op: row.Op, Layer: row.Layer, Token: -1, Reasons: row.Reasons}
			}
		case compare.Unmeasured:
			r.Summary.Unmeasured++
		}
	}
	switch {
	case r.Summary.Fail > 0:
		r.Verdict = compare.VerdictFail
	case r.Summary.Pass > 0:
		r.Verdict = compare.VerdictPass
	default:
		r.Verdict = compare.VerdictUnmeasured
	}
}

// WriteFile writes dir/name (creating its directory) with write and
// returns the path.
func WriteFile(t *testing.T, dir, name string, write func(f *os.File) error) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}
