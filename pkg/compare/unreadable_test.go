package compare

import (
	"fmt"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// badSide is a Side with some nodes marked Unreadable, whose loads fail.
type badSide struct {
	*TensorList
	bad map[string]string
}

func (s badSide) Nodes() []Node {
	ns := append([]Node(nil), s.TensorList.Nodes()...)
	for k, why := range s.bad {
		ns = append(ns, Node{Key: k, Name: k, Unreadable: why})
	}
	return ns
}

func (s badSide) Tensor(key string) (*tensor.Tensor, error) {
	if why, ok := s.bad[key]; ok {
		return nil, fmt.Errorf("%s", why)
	}
	return s.TensorList.Tensor(key)
}

// TestCompareUnreadableIsNotAPass: a file that cannot be read, on either
// side, matched or not, leaves the verdict unmeasured even when every
// measured tensor passes; a failing tensor still makes it a fail.
func TestCompareUnreadableIsNotAPass(t *testing.T) {
	g := graph(1)
	why := "x.npy: offset 0: not a .npy file"
	cases := []struct {
		name       string
		ref, other Side
		broken     bool // make a tensor fail too
		want       Verdict
	}{
		{"none", NewTensorList(g), NewTensorList(g), false, VerdictPass},
		{"other matched", NewTensorList(g), badSide{NewTensorList(g[1:]), map[string]string{"inp_embd": why}}, false, VerdictUnmeasured},
		{"other unmatched", NewTensorList(g), badSide{NewTensorList(g), map[string]string{"blk.0.mystery": why}}, false, VerdictUnmeasured},
		{"reference unmatched", badSide{NewTensorList(g), map[string]string{"zzz": why}}, NewTensorList(g), false, VerdictUnmeasured},
		{"and a failure", NewTensorList(g), badSide{NewTensorList(graph(2)), map[string]string{"zzz": why}}, true, VerdictFail},
	}
	for _, c := range cases {
		rep, err := Compare(c.ref, c.other, Options{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Verdict != c.want {
			t.Errorf("%s: verdict %s, want %s", c.name, rep.Verdict, c.want)
		}
		if c.want == VerdictPass {
			continue
		}
		if rep.Summary.Unreadable != 1 {
			t.Errorf("%s: summary counts %d unreadable, want 1", c.name, rep.Summary.Unreadable)
		}
		if c.want == VerdictUnmeasured && !strings.Contains(strings.Join(rep.Warnings, "\n"), "1 file cannot be read (first: "+why+"): the comparison is incomplete, not a pass") {
			t.Errorf("%s: warnings %q", c.name, rep.Warnings)
		}
		found := false
		for _, d := range rep.Unmatched {
			found = found || d.Reason == "cannot be read: "+why
		}
		for _, r := range rep.Tensors {
			found = found || (r.Status == Unmeasured && strings.Contains(strings.Join(r.Reasons, ";"), why))
		}
		if !found {
			t.Errorf("%s: the unreadable node is not reported with its reason: %+v %+v", c.name, rep.Unmatched, rep.Tensors)
		}
	}
}
