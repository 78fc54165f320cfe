package pipeline

import (
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// nameAdvice adds reference.NameAdvice to rep when few of one side's
// tensors found a counterpart: side is "other" (compare's B, an engine's
// dump) or "reference" (run's --ref), label how the warning names it.
func nameAdvice(rep *compare.Report, side, label string) {
	var unmatched, llama []string
	total := 0
	for _, d := range rep.Unmatched {
		if d.Side == side {
			unmatched = append(unmatched, d.Name)
		} else {
			llama = append(llama, d.Name)
		}
	}
	for _, r := range rep.Tensors {
		if r.Status == compare.Skipped {
			continue
		}
		if side == "reference" {
			total++
			if r.Other != nil {
				llama = append(llama, r.Other.Name)
			}
		} else {
			llama = append(llama, r.Name)
		}
	}
	if side == "other" {
		total = len(unmatched)
		for _, r := range rep.Tensors {
			if r.Other != nil {
				total++
			}
		}
	}
	if w := reference.NameAdvice(label, total, unmatched, llama); w != "" {
		rep.Warnings = append(rep.Warnings, w)
	}
}
