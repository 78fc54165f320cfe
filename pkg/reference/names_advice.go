package reference

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// NamesDoc is where the names a reference must use are documented.
const NamesDoc = "docs/names.md"

// maxSuggestions bounds the nearest-name suggestions of NameAdvice.
const maxSuggestions = 5

// NameAdvice explains an engine's dump whose tensor names mostly match no
// llama.cpp name. side names it ("B" or a path); matched are the names of
// its tensors alignment paired, unmatched those it left without a
// counterpart, llama the llama.cpp side's node names. When at least half of
// the tensors matched it returns "". Otherwise the advice says how many
// matched, suggests the nearest llama.cpp name for a few unmatched ones (by
// layer number, by the position of the op in a block, and by shared name
// tokens and edit distance), suggests a built-in map (--names hf or
// --names meta) when most names follow its convention — and names the
// matches that convention gives another meaning (Meta's norm is llama.cpp's
// result_norm, not its norm) — and points to NamesDoc.
func NameAdvice(side string, matched, unmatched, llama []string) string {
	total := len(matched) + len(unmatched)
	if total == 0 || len(unmatched) == 0 || 2*len(matched) >= total {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "names: only %d of the %d tensors of %s matched a llama.cpp node name", len(matched), total, side)
	conv := conventionOf(append(slices.Clone(matched), unmatched...))
	if conv != nil {
		var wrong []string
		for _, e := range matched {
			if to, ok := conv.Map(e); ok && to != e {
				wrong = append(wrong, fmt.Sprintf("%s is llama.cpp's %s", e, to))
			}
		}
		if len(wrong) > 0 {
			fmt.Fprintf(&b, "; in %s convention %s, so %s different tensors", conventionWhose(conv), strings.Join(wrong, ", "), plural(len(wrong), "that match pairs", "those matches pair"))
		}
	}
	var sugg []string
	for _, e := range unmatched {
		if len(sugg) == maxSuggestions {
			break
		}
		to := ""
		if conv != nil {
			to, _ = conv.Map(e)
		}
		if to == "" {
			to = nearestName(e, llama)
		}
		if to != "" {
			sugg = append(sugg, e+" → "+to)
		}
	}
	if len(sugg) > 0 {
		fmt.Fprintf(&b, "; nearest llama.cpp names: %s", strings.Join(sugg, ", "))
		if n := len(unmatched) - len(sugg); n > 0 {
			fmt.Fprintf(&b, ", … (%d more unmatched)", n)
		}
	}
	if conv != nil {
		fmt.Fprintf(&b, "; they look like %s module names: try --names %s", conventionWhose(conv), conv.Name)
	} else {
		b.WriteString("; map them with --names FILE")
	}
	fmt.Fprintf(&b, " (see %s, \"Your engine's names\")", NamesDoc)
	return b.String()
}

// conventionWhose names a built-in map's convention in the possessive.
func conventionWhose(m *NameMap) string {
	if m.Name == NamesMeta {
		return "Meta's reference llama code's"
	}
	return "Hugging Face transformers'"
}

// conventionOf returns the built-in map that renames most of names, if it
// renames at least half of them.
func conventionOf(names []string) *NameMap {
	var best *NameMap
	bestN := 0
	for _, spec := range []string{NamesHF, NamesMeta} {
		m, err := BuiltinNameMap(spec, "llama")
		if err != nil {
			continue
		}
		n := 0
		for _, e := range names {
			if _, ok := m.Map(e); ok {
				n++
			}
		}
		if n > bestN {
			best, bestN = m, n
		}
	}
	if 2*bestN < len(names) {
		return nil
	}
	return best
}

// nearestName returns the llama.cpp name most like the engine name e, ""
// when none shares its layer (or its lack of one) and anything else.
func nearestName(e string, llama []string) string {
	el := nameLayer(e)
	er := opRank(e)
	et := nameTokens(e)
	best, bestScore := "", 0.0
	seen := map[string]bool{}
	for _, l := range llama {
		l, _ = tensor.SplitOccurrence(l)
		if seen[l] || strings.Contains(l, " ") || unnamedNode(l) {
			continue
		}
		seen[l] = true
		if tensor.Layer(l) != el {
			continue
		}
		score := 0.0
		if er != 50 && er == opRank(l) {
			score += 2
		}
		score += jaccard(et, nameTokens(l))
		if score == 0 {
			continue
		}
		score += 0.5 * (1 - float64(editDistance(strings.ToLower(e), strings.ToLower(l)))/float64(max(len(e), len(l))))
		if score > bestScore {
			best, bestScore = l, score
		}
	}
	return best
}

// unnamedNode reports ggml's default names node_N / leaf_N.
func unnamedNode(n string) bool {
	return strings.HasPrefix(n, "node_") || strings.HasPrefix(n, "leaf_")
}

// nameTokens splits a name into lower-case words without digits.
func nameTokens(n string) []string {
	n, _ = tensor.SplitOccurrence(n)
	f := strings.FieldsFunc(strings.ToLower(n), func(r rune) bool {
		return !(r >= 'a' && r <= 'z')
	})
	sort.Strings(f)
	return f
}

// jaccard is |a ∩ b| / |a ∪ b| of two sorted word lists, as sets.
func jaccard(a, b []string) float64 {
	set := map[string]int{}
	for _, w := range a {
		set[w] |= 1
	}
	for _, w := range b {
		set[w] |= 2
	}
	both := 0
	for _, v := range set {
		if v == 3 {
			both++
		}
	}
	if len(set) == 0 {
		return 0
	}
	return float64(both) / float64(len(set))
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
