package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// coveragePair writes a reference .npy directory of four tensors in two
// layers and an engine's directory holding only the first: 25% coverage.
func coveragePair(t *testing.T, dir string) (ref, engine string) {
	t.Helper()
	x := func(name string, seed float32) npyTensor {
		return npyTensor{name, 4, 2, []float32{seed, 2, 3, 4, 5, 6, 7, 8}}
	}
	ref = writeNPYDir(t, filepath.Join(dir, "ref"), x("attn_norm-0", 1), x("ffn_out-0", 2), x("attn_norm-1", 3), x("ffn_out-1", 4))
	engine = writeNPYDir(t, filepath.Join(dir, "engine"), x("attn_norm-0", 1))
	return ref, engine
}

// TestMinCoverage runs --min-coverage through compare, report and run:
// a verdict below it fails with exit 1 and the coverage as its reason,
// one at or above it passes, and a bad value is a usage error (exit 2)
// found before any work.
func TestMinCoverage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(dir, ref, engine string) []string
		code int
		want []string // in stdout + stderr
	}{
		{"a sparse pass says so", func(_, ref, engine string) []string { return []string{"compare", ref, engine} }, exitAgree,
			[]string{"layerdiff PASS on 25% of the reference's nodes: 3 unmeasured; the 1 compared tensor within tolerance",
				"coverage   1 of 4 reference nodes measured (25%), 3 unmeasured", "1            2     0     0       2     0           -  nothing measured",
				"- low coverage: 1 of 4 reference nodes measured (25%)"}},
		{"below the minimum fails", func(_, ref, engine string) []string { return []string{"compare", ref, engine, "--min-coverage", "50%"} }, exitDivergence,
			[]string{"layerdiff FAIL: coverage 25% is below the required 50% (--min-coverage): 3 of 4 reference nodes unmeasured",
				"layerdiff: coverage 25% is below --min-coverage 50%: 1 of 4 reference nodes measured"}},
		{"a fraction works as well", func(_, ref, engine string) []string { return []string{"compare", ref, engine, "--min-coverage", "0.3"} }, exitDivergence,
			[]string{"required 30% (--min-coverage): not met"}},
		{"at the minimum passes", func(_, ref, engine string) []string { return []string{"compare", ref, engine, "--min-coverage=0.25"} }, exitAgree,
			[]string{"required 25% (--min-coverage): met"}},
		{"full coverage passes 100%", func(_, ref, _ string) []string { return []string{"compare", ref, ref, "--min-coverage", "100%"} }, exitAgree,
			[]string{"layerdiff PASS: all 4 compared tensors within tolerance; 4 of 4 reference nodes measured (100%)"}},
		{"json says why", func(_, ref, engine string) []string {
			return []string{"compare", ref, engine, "--min-coverage", "50%", "--format", "json"}
		}, exitDivergence, []string{`"verdict": "fail"`, `"below_min": true`, `"min": 0.5`, `"first_divergence": null`}},
		{"junit fails a coverage testcase", func(_, ref, engine string) []string {
			return []string{"compare", ref, engine, "--min-coverage", "50%", "--format", "junit"}
		}, exitDivergence, []string{`<testcase name="coverage &gt;= 50%" classname="layerdiff.coverage">`, `<failure message="coverage 25% is below the required 50%" type="coverage">`}},
		{"report re-judges a saved pass", func(dir, ref, engine string) []string {
			return []string{"report", "--in", save(t, dir, "compare", ref, engine), "--min-coverage", "50%", "--format", "md"}
		}, exitDivergence, []string{"# layerdiff: **FAIL**", "Coverage 25% is below the required 50% (--min-coverage)"}},
		{"report re-judges a saved coverage fail with a lower minimum", func(dir, ref, engine string) []string {
			return []string{"report", "--in", save(t, dir, "compare", ref, engine, "--min-coverage", "90%"), "--min-coverage", "20%"}
		}, exitAgree, []string{"layerdiff PASS on 25% of the reference's nodes", "required 20% (--min-coverage): met"}},
		{"report keeps a saved coverage fail without the flag", func(dir, ref, engine string) []string {
			return []string{"report", "--in", save(t, dir, "compare", ref, engine, "--min-coverage", "90%")}
		}, exitDivergence, []string{"layerdiff FAIL: coverage 25% is below the required 90%"}},
		{"a percentage without its sign", func(_, ref, engine string) []string { return []string{"compare", ref, engine, "--min-coverage", "50"} }, exitBadInput,
			[]string{`layerdiff: usage: --min-coverage: "50" is outside 0 to 1: a percentage needs its % sign (50%)`}},
		{"not a number", func(_, ref, engine string) []string {
			return []string{"compare", ref, engine, "--min-coverage", "most"}
		}, exitBadInput,
			[]string{`layerdiff: usage: --min-coverage: "most" is not a number`}},
		{"empty", func(_, ref, engine string) []string { return []string{"compare", ref, engine, "--min-coverage="} }, exitBadInput,
			[]string{`layerdiff: usage: --min-coverage: "" is not a number`}},
		{"above 100%", func(_, ref, engine string) []string {
			return []string{"compare", ref, engine, "--min-coverage", "120%"}
		}, exitBadInput,
			[]string{`layerdiff: usage: --min-coverage: "120%" is outside 0% to 100%`}},
		{"negative", func(_, ref, engine string) []string {
			return []string{"compare", ref, engine, "--min-coverage", "-0.5"}
		}, exitBadInput,
			[]string{`"-0.5" is outside 0 to 1`}},
		{"report refuses a bad value", func(dir, ref, engine string) []string {
			return []string{"report", "--in", save(t, dir, "compare", ref, engine), "--min-coverage", "NaN"}
		}, exitBadInput, []string{`layerdiff: usage: --min-coverage: "NaN" is not a number`}},
		{"run refuses a bad value before any work", func(dir, _, _ string) []string {
			return []string{"run", "--ref", filepath.Join(dir, "nosuch"), "--model", filepath.Join(dir, "nosuch.gguf"), "--min-coverage", "1.5"}
		}, exitBadInput, []string{`layerdiff: usage: --min-coverage: "1.5" is outside 0 to 1`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ref, engine := coveragePair(t, dir)
			r := layerdiff(t, tc.args(dir, ref, engine)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.code, r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout+r.stderr, w) {
					t.Errorf("output lacks %q\n%s", w, r)
				}
			}
			if tc.code == exitBadInput && r.stdout != "" {
				t.Errorf("a usage error printed a report:\n%s", r)
			}
		})
	}
}

// save runs args with --save into dir and returns the saved file.
func save(t *testing.T, dir string, args ...string) string {
	t.Helper()
	p := filepath.Join(dir, "saved.json")
	r := layerdiff(t, append(args, "--save", p)...)
	if r.code != exitAgree && r.code != exitDivergence {
		t.Fatalf("setup:\n%s", r)
	}
	return p
}

// TestMinCoverageSaved: --save records the verdict held to --min-coverage
// and the coverage that made it.
func TestMinCoverageSaved(t *testing.T) {
	dir := t.TempDir()
	ref, engine := coveragePair(t, dir)
	p := save(t, dir, "compare", ref, engine, "--min-coverage", "50%")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Verdict  string `json:"verdict"`
		Coverage struct {
			Nodes, Measured int
			Min             float64
			BelowMin        bool `json:"below_min"`
		} `json:"coverage"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if c := rep.Coverage; rep.Verdict != "fail" || c.Nodes != 4 || c.Measured != 1 || c.Min != 0.5 || !c.BelowMin {
		t.Errorf("saved verdict %s, coverage %+v", rep.Verdict, c)
	}
}
