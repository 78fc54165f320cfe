package show

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/reference"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func f(v float64) *float64 { return &v }

func TestComputeStats(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		name  string
		data  []float32
		first int
		want  Stats
	}{
		{"empty", nil, 8, Stats{First: []float64{}}},
		{"all zero", []float32{0, 0, 0, 0}, 2, Stats{Count: 4, First: []float64{0, 0}, Mean: f(0), RMS: f(0), Min: f(0), Max: f(0)}},
		{"plain", []float32{1, -2, 3, 0}, 8, Stats{Count: 4, First: []float64{1, -2, 3, 0}, Mean: f(0.5), RMS: f(math.Sqrt(14.0 / 4)), Min: f(-2), Max: f(3), NonZero: 3}},
		{"nan skipped by mean and min", []float32{nan, 2, 4}, 1, Stats{Count: 3, First: []float64{math.NaN()}, Mean: f(3), RMS: f(math.Sqrt(10)), Min: f(2), Max: f(4), NonZero: 3, NaN: 1}},
		{"inf in min/max, not in mean", []float32{-inf, 1, inf}, 3, Stats{Count: 3, First: []float64{math.Inf(-1), 1, math.Inf(1)}, Mean: f(1), RMS: f(1), Min: f(math.Inf(-1)), Max: f(math.Inf(1)), NonZero: 3, Inf: 2}},
		{"all nan", []float32{nan, nan}, 0, Stats{Count: 2, First: []float64{}, NonZero: 2, NaN: 2}},
	}
	eq := func(a, b *float64) bool {
		if a == nil || b == nil {
			return a == b
		}
		return *a == *b || math.Abs(*a-*b) < 1e-12
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := ComputeStats(c.data, c.first)
			w := c.want
			ok := g.Count == w.Count && g.NonZero == w.NonZero && g.NaN == w.NaN && g.Inf == w.Inf &&
				eq(g.Mean, w.Mean) && eq(g.RMS, w.RMS) && eq(g.Min, w.Min) && eq(g.Max, w.Max) && len(g.First) == len(w.First)
			for i := range g.First {
				if ok && !(g.First[i] == w.First[i] || math.IsNaN(g.First[i]) && math.IsNaN(w.First[i])) {
					ok = false
				}
			}
			if !ok {
				t.Errorf("got %s\nwant %s", g.text(), w.text())
			}
			if _, err := json.Marshal(g); err != nil {
				t.Errorf("JSON: %v", err)
			}
		})
	}
}

// writeNPY writes one .npy file of ggml shape {ne0, ne1}.
func writeNPY(t *testing.T, path string, ne0, ne1 int64, vals []float32) {
	t.Helper()
	if err := reference.WriteNPYFloat32(path, []int64{ne1, ne0}, vals); err != nil {
		t.Fatal(err)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got\n%s--- want\n%s", p, got, want)
	}
}

func TestTextGolden(t *testing.T) {
	dir := t.TempDir()
	var vals []float32
	for i := range 80 { // 10 rows of 8: rows 3..6 are omitted
		vals = append(vals, float32(i%9)-4+0.125*float32(i%3))
	}
	vals[5] = float32(math.NaN())
	vals[17] = float32(math.Inf(-1))
	p := filepath.Join(dir, "attn_norm-0.npy")
	writeNPY(t, p, 8, 10, vals)
	for _, c := range []struct {
		file string
		o    Options
	}{
		{"rows.txt", Options{Token: -1, First: 4}},
		{"token.txt", Options{Token: 2}},
	} {
		r, err := NPYFile(p, c.o)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		golden(t, c.file, strings.ReplaceAll(b.String(), dir, "$DIR"))
	}
}

func TestJSONFields(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.npy")
	writeNPY(t, p, 2, 2, []float32{1, float32(math.NaN()), 0, float32(math.Inf(1))})
	r, err := NPYFile(p, Options{Token: -1})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	for _, k := range []string{"source", "key", "name", "op", "type", "ne", "slice_by", "slices", "omitted", "whole"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no field %q\n%s", k, b.String())
		}
	}
	whole := m["whole"].(map[string]any)
	for _, k := range []string{"count", "first", "mean", "rms", "min", "max", "nonzero", "nan", "inf"} {
		if _, ok := whole[k]; !ok {
			t.Errorf("whole: no field %q", k)
		}
	}
	if whole["max"] != "inf" || whole["first"].([]any)[1] != "nan" {
		t.Errorf("non-finite values not encoded as strings\n%s", b.String())
	}
	if s := m["slices"].([]any); len(s) != 2 || s[0].(map[string]any)["label"] != "row 0" {
		t.Errorf("slices: %v", s)
	}
}
