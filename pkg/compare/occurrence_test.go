package compare

import "testing"

// TestAlignOccurrence checks rule 0: a name with an explicit "#N" matches
// the N-th node of that name on the other side, whatever rule 1 would do
// by occurrence or op, and never a node whose shape rules it out.
func TestAlignOccurrence(t *testing.T) {
	ref := []Node{
		{Key: "Qcur-0", Name: "Qcur-0", Op: "MUL_MAT", Ne: []int64{256, 7}},
		{Key: "Qcur-0 (reshaped)", Name: "Qcur-0 (reshaped)", Op: "RESHAPE", Ne: []int64{64, 4, 7}},
		{Key: "Qcur-0#2", Name: "Qcur-0", Op: "ROPE", Ne: []int64{64, 4, 7}},
		{Key: "Kcur-0", Name: "Kcur-0", Op: "MUL_MAT", Ne: []int64{128, 7}},
		{Key: "Kcur-0#2", Name: "Kcur-0", Op: "ROPE", Ne: []int64{64, 2, 7}},
	}
	for _, tc := range []struct {
		name  string
		other []Node
		want  []int // per reference node: other index, −1 unmatched
		how   string
	}{
		{"second occurrence alone", []Node{{Key: "Qcur-0#2", Name: "Qcur-0#2", Ne: []int64{64, 4, 7}}}, []int{-1, -1, 0, -1, -1}, "name#N"},
		{"both occurrences", []Node{
			{Key: "Qcur-0", Name: "Qcur-0", Ne: []int64{256, 7}},
			{Key: "Qcur-0#2", Name: "Qcur-0#2", Ne: []int64{64, 4, 7}},
		}, []int{0, 0, 1, -1, -1}, ""}, // the RESHAPE shows Qcur-0's data (rule 2)
		{"first occurrence named explicitly", []Node{{Key: "Kcur-0#1", Name: "Kcur-0#1", Ne: []int64{128, 7}}}, []int{-1, -1, -1, 0, -1}, "name#N"},
		{"shape rules it out", []Node{{Key: "Kcur-0#2", Name: "Kcur-0#2", Ne: []int64{64, 3, 7}}}, []int{-1, -1, -1, -1, -1}, ""},
		{"no such occurrence", []Node{{Key: "Kcur-0#3", Name: "Kcur-0#3", Ne: []int64{64, 2, 7}}}, []int{-1, -1, -1, -1, -1}, ""},
		{"explicit occurrence on the reference side", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.other == nil {
				// The reverse: an .npy directory as the reference.
				r := []Node{{Key: "Kcur-0#2", Name: "Kcur-0#2", Ne: []int64{64, 2, 7}}}
				al := Align(r, ref, nil)
				if m := al.Matches[0]; m.Other != 4 || m.How != "name#N" {
					t.Errorf("match %+v, want other 4 by name#N", m)
				}
				return
			}
			al := Align(ref, tc.other, nil)
			for i, m := range al.Matches {
				if m.Other != tc.want[i] {
					t.Errorf("ref %d (%s): other %d, want %d", i, ref[i].Key, m.Other, tc.want[i])
				}
				if tc.how != "" && m.Other >= 0 && m.How != tc.how {
					t.Errorf("ref %d: how %q, want %q", i, m.How, tc.how)
				}
			}
		})
	}
}
