package compare

import (
	"fmt"
	"sort"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// Selections: a mixture of experts routes each token to the experts an
// ARGSORT of the router's probabilities puts first (llama.cpp's
// ffn_moe_argsort-L, whose top-k view ffn_moe_topk-L feeds MUL_MAT_ID).
// Its values are indices, not measurements: a different index is a
// different expert, however close the probabilities, and only the first k
// are used. Such a tensor is judged by the selection (Tolerance.Selection):
// per token, the first k indices must be the same experts in the same
// order; the order of the others is not judged. A difference is reported
// with the router probabilities of the experts involved, on both sides, so
// that a flip between near-equal probabilities (which rounding, another
// engine's arithmetic or a quantization can cause) is told from a wrong
// router: everything downstream of a flip differs by a whole expert.

// Selection is the comparison of a selection tensor's rows (Metrics).
type Selection struct {
	// K is the number of leading indices each token uses (n_expert_used).
	K int `json:"k"`
	// Differ counts the tokens whose selection differs; Tokens describes
	// each of them (token order).
	Differ int              `json:"differ"`
	Tokens []TokenSelection `json:"tokens,omitempty"`
	// Scores names the tensor whose values were ranked (the probabilities),
	// "" when it was not available.
	Scores string `json:"scores,omitempty"`
}

// TokenSelection is one token whose selections differ.
type TokenSelection struct {
	Token int   `json:"token"`
	Ref   []int `json:"ref"`   // the reference's first K indices
	Other []int `json:"other"` // the other side's
	// SameSet: the same experts in another order (the experts' slots are
	// permuted in the MUL_MAT_ID outputs; their weighted sum is not).
	SameSet bool `json:"same_set"`
	// Experts are the indices selected on one side only, and (when the
	// scores are known) their scores on both sides, in that order.
	Experts     []int     `json:"experts,omitempty"`
	RefScores   []float64 `json:"ref_scores,omitempty"`
	OtherScores []float64 `json:"other_scores,omitempty"`
	// Gap is the reference's score of its K-th choice minus that of its
	// best unselected one of Experts: how near the flip was (-1 when the
	// scores are unknown).
	Gap float64 `json:"gap"`
}

// selSpec says how to judge a reference selection tensor: k and the keys
// of the scores it ranks on each side ("" when absent).
type selSpec struct {
	k                    int
	refScore, otherScore string
}

// selectionSpecs finds, for every ARGSORT node of the reference, its k (the
// width of its top-k view ffn_moe_topk-L, else its whole row) and the
// scores (ffn_moe_probs-L) on both sides, by llama.cpp's names.
func selectionSpecs(refNodes, otherNodes []Node) map[string]selSpec {
	byName := func(nodes []Node) map[string]Node {
		m := map[string]Node{}
		for _, n := range nodes {
			if _, ok := m[n.Name]; !ok {
				m[n.Name] = n
			}
		}
		return m
	}
	var rm, om map[string]Node
	out := map[string]selSpec{}
	for _, n := range refNodes {
		if n.Op != "ARGSORT" {
			continue
		}
		if rm == nil {
			rm, om = byName(refNodes), byName(otherNodes)
		}
		s := selSpec{}
		if len(n.Ne) > 0 {
			s.k = int(n.Ne[0])
		}
		if base, suffix, ok := strings.Cut(n.Name, "-"); ok && base == "ffn_moe_argsort" {
			if v, ok := rm["ffn_moe_topk-"+suffix]; ok && len(v.Ne) > 0 && int(v.Ne[0]) <= s.k {
				s.k = int(v.Ne[0])
			}
			if p, ok := rm["ffn_moe_probs-"+suffix]; ok && !p.NoData {
				s.refScore = p.Key
			}
			if p, ok := om["ffn_moe_probs-"+suffix]; ok {
				s.otherScore = p.Key
			}
		}
		out[n.Key] = s
	}
	return out
}

// measureSelection compares the selections of a and b, rows of width w
// (token t's row is a[t*w:(t+1)*w]; tokenBase is the first row's prompt
// position), the first k indices of each; rs and os are the scores on each
// side (same layout; nil when unknown).
func measureSelection(a, b []float32, w, k, tokenBase int, rs, os []float32, scores string) *Selection {
	s := &Selection{K: k, Scores: scores}
	if w <= 0 || k <= 0 || k > w {
		return s
	}
	score := func(v []float32, t, e int) (float64, bool) {
		if v == nil || e < 0 || e >= w || (t+1)*w > len(v) {
			return 0, false
		}
		return float64(v[t*w+e]), true
	}
	for t := 0; (t+1)*w <= len(a) && (t+1)*w <= len(b); t++ {
		ra, ob := make([]int, k), make([]int, k)
		same := true
		for i := 0; i < k; i++ {
			ra[i], ob[i] = int(a[t*w+i]), int(b[t*w+i])
			same = same && ra[i] == ob[i]
		}
		if same {
			continue
		}
		s.Differ++
		ts := TokenSelection{Token: tokenBase + t, Ref: ra, Other: ob, Gap: -1}
		inRef, inOther := map[int]bool{}, map[int]bool{}
		for i := 0; i < k; i++ {
			inRef[ra[i]], inOther[ob[i]] = true, true
		}
		for _, e := range ra {
			if !inOther[e] {
				ts.Experts = append(ts.Experts, e)
			}
		}
		for _, e := range ob {
			if !inRef[e] {
				ts.Experts = append(ts.Experts, e)
			}
		}
		ts.SameSet = len(ts.Experts) == 0
		if ts.SameSet {
			// the experts whose slots moved
			for i := 0; i < k; i++ {
				if ra[i] != ob[i] {
					ts.Experts = append(ts.Experts, ra[i])
				}
			}
			sort.Ints(ts.Experts)
		}
		okR, okO := rs != nil, os != nil
		for _, e := range ts.Experts {
			if v, ok := score(rs, t, e); ok {
				ts.RefScores = append(ts.RefScores, v)
			} else {
				okR = false
			}
			if v, ok := score(os, t, e); ok {
				ts.OtherScores = append(ts.OtherScores, v)
			} else {
				okO = false
			}
		}
		if !okR {
			ts.RefScores = nil
		}
		if !okO {
			ts.OtherScores = nil
		}
		if okR {
			// the reference's k-th choice against the best expert it did
			// not choose that the other side did (or, same set, the
			// closest pair of the moved experts)
			kth, _ := score(rs, t, ra[k-1])
			best, found := 0.0, false
			for _, e := range ts.Experts {
				if v, _ := score(rs, t, e); !inRef[e] && (!found || v > best) {
					best, found = v, true
				}
			}
			if found {
				ts.Gap = kth - best
			} else if len(ts.RefScores) > 1 {
				g := -1.0
				for i := range ts.RefScores {
					for j := i + 1; j < len(ts.RefScores); j++ {
						if d := abs(ts.RefScores[i] - ts.RefScores[j]); g < 0 || d < g {
							g = d
						}
					}
				}
				ts.Gap = g
			}
		}
		s.Tokens = append(s.Tokens, ts)
	}
	return s
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// selectionReason is Judge's reason for differing selections.
func selectionReason(s *Selection) string {
	var parts []string
	for i, t := range s.Tokens {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(s.Tokens)-3))
			break
		}
		p := fmt.Sprintf("token %d selects %v here, %v there", t.Token, t.Ref, t.Other)
		if t.SameSet {
			p += " (the same experts in another order: their slots are permuted in the MUL_MAT_ID outputs, their weighted sum is not)"
		}
		if t.RefScores != nil {
			var sc []string
			for j, e := range t.Experts {
				v := fmt.Sprintf("expert %d %s", e, FormatFloat(t.RefScores[j], 4))
				if t.OtherScores != nil {
					v += " vs " + FormatFloat(t.OtherScores[j], 4)
				}
				sc = append(sc, v)
			}
			p += "; " + s.scoreName() + " " + strings.Join(sc, ", ")
			if t.Gap >= 0 {
				p += fmt.Sprintf("; reference gap %s", FormatFloat(t.Gap, 3))
				if t.Gap < 0.01 {
					p += " (a near tie: rounding can flip it)"
				}
			}
		}
		parts = append(parts, p)
	}
	tail := ""
	for _, t := range s.Tokens {
		if !t.SameSet {
			tail = "; what is computed from this selection differs by whole experts"
			break
		}
	}
	return fmt.Sprintf("the selected experts (first %d of each row) differ at %s: %s%s",
		s.K, plural(s.Differ, "token"), strings.Join(parts, "; "), tail)
}

func (s *Selection) scoreName() string {
	if s.Scores == "" {
		return "scores"
	}
	b, _ := tensor.SplitName(s.Scores)
	if b == "ffn_moe_probs" {
		return "router probabilities (" + s.Scores + ")"
	}
	return s.Scores
}

// selectionOf measures a selection row: a and b are the compared data
// (shape ne), its scores read from both sides when sel names them and they
// have the same layout.
func selectionOf(ref, other Side, sel selSpec, a, b []float32, ne []int64, tokenBase int) *Selection {
	w := len(a)
	if len(ne) > 0 {
		w = int(ne[0])
	}
	k := sel.k
	if k <= 0 || k > w {
		k = w
	}
	read := func(s Side, key string) []float32 {
		if key == "" {
			return nil
		}
		t, err := s.Tensor(key)
		if err != nil || t == nil || len(t.Data) != len(a) {
			return nil
		}
		return t.Data
	}
	rs, os := read(ref, sel.refScore), read(other, sel.otherScore)
	name := sel.refScore
	if rs == nil {
		name = ""
	}
	return measureSelection(a, b, w, k, tokenBase, rs, os, name)
}

// MeasureSelection compares two selection tensors of shape ne (rows of
// ne[0] indices, one per token from token 0) on their first k indices
// (k <= 0: all of them), without scores: for a Measure whose tolerance has
// Selection (an isolation's recomputed ARGSORT).
func MeasureSelection(ref, other []float32, ne []int64, k int) *Selection {
	w := len(ref)
	if len(ne) > 0 && ne[0] > 0 {
		w = int(ne[0])
	}
	if k <= 0 || k > w {
		k = w
	}
	return measureSelection(ref, other, w, k, 0, nil, nil, "")
}
