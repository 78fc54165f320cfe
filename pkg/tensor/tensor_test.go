package tensor

import (
	"strings"
	"testing"
)

func TestSplitName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		base  string
		layer int
	}{
		{"attn_norm-0", "attn_norm", 0},
		{"ffn_up-12", "ffn_up", 12},
		{"Qcur-3 (reshaped)", "Qcur", 3},
		{"cache_k_l0 (view) (permuted)", "cache_k_l0", -1},
		{"inp_embd", "inp_embd", -1},
		{"result_output", "result_output", -1},
		{"node_56", "node_56", -1},
		{"-3", "-3", -1},
		{"", "", -1},
		{" (copy)", "", -1},
		{"x-1234567", "x-1234567", -1},
	} {
		b, l := SplitName(tc.name)
		if b != tc.base || l != tc.layer {
			t.Errorf("SplitName(%q) = %q, %d; want %q, %d", tc.name, b, l, tc.base, tc.layer)
		}
		if Layer(tc.name) != tc.layer {
			t.Errorf("Layer(%q) = %d, want %d", tc.name, Layer(tc.name), tc.layer)
		}
	}
}

func TestShapes(t *testing.T) {
	if !SameShape([]int64{64, 8, 1, 1}, []int64{64, 8}) || SameShape([]int64{64, 8}, []int64{8, 64}) {
		t.Error("SameShape")
	}
	if got := ShapeString([]int64{64, 8}); got != "{64, 8}" {
		t.Errorf("ShapeString = %q", got)
	}
	if n := Numel([]int64{64, 8, 1, 1}); n != 512 {
		t.Errorf("Numel = %d", n)
	}
	if got := Trim([]int64{1, 1, 1}); len(got) != 1 {
		t.Errorf("Trim = %v", got)
	}
	if s := SumF32([]float32{1e8, 1, -1e8}); s != 0 {
		t.Errorf("SumF32 = %v, want 0 (float32 accumulation loses the 1)", s)
	}
}

func TestSplitOccurrence(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		occ  int
	}{
		{"Qcur-0#2", "Qcur-0", 2},
		{"Qcur-0", "Qcur-0", 0},
		{"cache_k_l0 (view)#2", "cache_k_l0 (view)", 2},
		{"norm-0#10", "norm-0", 10},
		{"#2", "#2", 0},
		{"x#", "x#", 0},
		{"x#1234567", "x#1234567", 0},
		{"a#b", "a#b", 0},
		{"layer#3.x", "layer#3.x", 0},
		{"", "", 0},
		{"x#0", "x#0", 0},
	} {
		name, occ := SplitOccurrence(tc.in)
		if name != tc.name || occ != tc.occ {
			t.Errorf("SplitOccurrence(%q) = %q, %d; want %q, %d", tc.in, name, occ, tc.name, tc.occ)
		}
	}
}

// FuzzSplitOccurrence: an occurrence split off puts back together.
func FuzzSplitOccurrence(f *testing.F) {
	for _, s := range []string{"Qcur-0#2", "x#0", "#1", "a#b#3", "n#0012"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, occ := SplitOccurrence(in)
		switch {
		case occ < 0:
			t.Fatalf("%q: occurrence %d", in, occ)
		case occ == 0 && name != in:
			t.Fatalf("%q: no occurrence but name %q", in, name)
		case occ > 0 && (name == "" || !strings.HasPrefix(in, name+"#")):
			t.Fatalf("%q: %q, %d", in, name, occ)
		}
	})
}
