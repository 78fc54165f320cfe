package compare

import "fmt"

// occurrenceKey identifies the N-th node of one name: canonical base, layer,
// view suffix and N.
func occurrenceKey(in nodeInfo, n int) string {
	return fmt.Sprintf("%s|%d|%s|%d", in.base, in.layer, in.suffix, n)
}

// occurrences numbers each node of a side: its explicit occurrence, or for
// a name without one, 1 + the number of earlier nodes of the same name
// without one. Unnamed nodes get 0.
func occurrences(nodes []nodeInfo) []int {
	out := make([]int, len(nodes))
	seen := map[string]int{}
	for i, in := range nodes {
		switch {
		case in.unnamed:
		case in.occ > 0:
			out[i] = in.occ
		default:
			k := occurrenceKey(in, 0)
			seen[k]++
			out[i] = seen[k]
		}
	}
	return out
}

// alignOccurrences applies rule 0 of Align: a node with an explicit
// occurrence ("Qcur-0#2") on either side matches the node of the same name
// and occurrence on the other side when their shapes correspond.
func alignOccurrences(ref, other []Node, ri, oi []nodeInfo, al *Alignment, used []bool) {
	ro, oo := occurrences(ri), occurrences(oi)
	byKey := map[string]int{}
	for j, in := range oi {
		if oo[j] == 0 {
			continue
		}
		if k := occurrenceKey(in, oo[j]); !hasKey(byKey, k) {
			byKey[k] = j
		}
	}
	for i, in := range ri {
		if ro[i] == 0 {
			continue
		}
		j, ok := byKey[occurrenceKey(in, ro[i])]
		if !ok || used[j] || (in.occ == 0 && oi[j].occ == 0) {
			continue
		}
		if _, err := PlanTransform(ref[i], other[j], 0); err != nil {
			continue
		}
		al.Matches[i] = Match{Ref: i, Other: j, How: "name#N",
			Note: fmt.Sprintf("matched as occurrence %d of %s: %s ↔ %s", ro[i], in.ident, ref[i].Name, other[j].Name)}
		used[j] = true
	}
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}
