// Package compare is the stage after the readers and the forward pass: it
// pairs a reference graph (llama.cpp's activations) with another graph
// (layerdiff's forward pass, or a second reference), measures every pair,
// decides pass or fail, and builds the one Report value that the renderers
// in package render print.
//
// The pipeline, each step exported on its own:
//
//  1. Align pairs nodes across naming differences between llama.cpp
//     versions (the alias table DefaultAliases, repeated names by
//     occurrence, views collapsed to the data they show).
//  2. PlanTransform maps shapes onto each other (reshapes compared flat,
//     llama.cpp's last-token row subset, KV caches, GQA heads, an engine's
//     numpy axis orders, attention scores over T cells); Transform.Embed
//     is its inverse, for injecting the other side's tensor.
//  3. Measure, MeasurePartial and MeasureLogits compute the metrics
//     (NMSE as llama.cpp's test-backend-ops defines it, max abs/rel
//     difference, cosine, ULP percentiles, bit identity, NaN/Inf counts,
//     argmax/top-5/KL for logits, the sum check of text logs).
//  4. Judge applies a Tolerance from a Policy (built-in modes "ggml",
//     "f64", "bitexact", or a JSON policy file) and gives PASS, FAIL or
//     UNMEASURED; the caller's filter gives SKIPPED.
//  5. Compare runs 1–4 over a graph in order, finds the first divergence
//     and its first failing token, asks a Blamer for the culprit, and
//     returns the Report, whose JSON form (WriteJSON, ReadJSON) is the
//     stable contract.
//
// Formulas, edge cases, default numbers and the name table are in
// docs/tolerance.md; the JSON schema is in docs/report-json.md. The package
// depends only on package tensor, the standard library and gonum.
package compare
