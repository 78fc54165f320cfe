package pipeline

import (
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// nameAdvice adds reference.NameAdvice to rep when few of one side's
// tensors found a counterpart: side is "other" (compare's B, an engine's
// dump) or "reference" (run's --ref), label how the warning names it.
func nameAdvice(rep *compare.Report, side, label string) {
	var matched, unmatched, llama []string
	seen := map[string]bool{}
	for _, d := range rep.Unmatched {
		if d.Side == side {
			unmatched = append(unmatched, d.Name)
		} else {
			llama = append(llama, d.Name)
		}
	}
	for _, r := range rep.Tensors {
		if r.Status == compare.Skipped || r.Other == nil {
			continue
		}
		engine, ll := r.Other.Name, r.Name
		if side == "reference" {
			engine, ll = r.Name, r.Other.Name
		}
		llama = append(llama, ll)
		if !seen[engine] {
			seen[engine] = true
			matched = append(matched, engine)
		}
	}
	if w := reference.NameAdvice(label, matched, unmatched, llama); w != "" {
		rep.Warnings = append(rep.Warnings, w)
	}
}
