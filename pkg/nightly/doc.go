// Package nightly is the stage after the report in the nightly regression
// run (scripts/nightly.sh, docs/nightly.md): it consumes the compare.Report
// of every matrix cell (a `layerdiff run --save` result) and keeps, checks
// and updates the cell's committed baseline.
//
//	model/reference → compare → report → nightly (baseline check, summary)
//
// A Baseline is a compact record of one cell's comparison — per tensor its
// status, NMSE, max |a−b| and whether it was bit-exact, plus the verdict —
// committed under fixtures/baselines/ (NewBaseline, WriteBaseline,
// ReadBaseline). CheckBaseline holds a fresh result against it with the
// GrowthRule and gives a CellCheck: its findings (every difference fails
// the cell), warnings and outcome; CheckError does the same for a cell that
// could not be run. Check and Update are what `layerdiff baseline check`
// and `update` do with their files. The summary combines the checks of a
// whole matrix into markdown and JUnit (WriteSummaryMarkdown,
// WriteSummaryJUnit).
//
// Files: baseline.go the record and its file format, rule.go the growth
// rule, check.go the check and its outcome, summary.go the summary.
package nightly
