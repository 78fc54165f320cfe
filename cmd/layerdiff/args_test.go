package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp()
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"ld", "compare", "A", "B", "--format", "json"}, []string{"ld", "compare", "--format", "json", "--", "A", "B"}},
		{[]string{"ld", "compare", "--format=md", "A", "B", "--force"}, []string{"ld", "compare", "--format=md", "--force", "--", "A", "B"}},
		{[]string{"ld", "inspect", "m.gguf", "--json"}, []string{"ld", "inspect", "--json", "--", "m.gguf"}},
		{[]string{"ld", "compare", "A", "--", "-B"}, []string{"ld", "compare", "--", "A", "-B"}},
		{[]string{"ld", "run", "--ref", "d", "--model", "m"}, []string{"ld", "run", "--ref", "d", "--model", "m"}},
		{[]string{"ld", "nosuch", "x"}, []string{"ld", "nosuch", "x"}},
		{[]string{"ld"}, []string{"ld"}},
	} {
		if d := cmp.Diff(tc.want, permuteArgs(app, tc.in)); d != "" {
			t.Errorf("permuteArgs(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}
