package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/internal/atomicfile"
	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/compare/render"
	"github.com/layerdiff/layerdiff/pkg/pipeline"
	"github.com/urfave/cli/v2"
)

// outputFlags are shared by run, compare and report.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Value: "text", Usage: "report format: " + strings.Join(render.Formats(), ", ") + " (md for markdown)"},
		&cli.StringFlag{Name: "out", Usage: "write the report to `FILE` (atomically) instead of stdout"},
		&cli.BoolFlag{Name: "all", Usage: "text format: list every tensor, not only the per-layer table"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite existing --out / --save files"},
		minCoverageFlag(),
	}
}

// policyFlags select and adjust the tolerance policy (run and compare).
func policyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "tolerance", Usage: "tolerance policy JSON `FILE` (docs/tolerance.md)"},
		&cli.StringFlag{Name: "mode", Usage: "tolerance mode: " + strings.Join(compare.Modes(), ", ") + ", or for run " + pipeline.ModeCrossKernel + " (default: from --numerics, or ggml; run uses cross-kernel when it cannot emulate the reference's kernels)"},
		&cli.Float64Flag{Name: "rtol", Value: -1, Usage: "relative tolerance for every tensor"},
		&cli.Float64Flag{Name: "atol", Value: -1, Usage: "absolute tolerance for every tensor"},
		&cli.StringFlag{Name: "layers", Usage: "compare only layers `A-B` (nodes outside layers are kept)"},
		&cli.StringFlag{Name: "filter", Usage: "compare only node names matching `REGEX`"},
		&cli.StringFlag{Name: "save", Usage: "also save the result as JSON to `FILE` (for layerdiff report)"},
	}
}

// policyFrom builds the tolerance policy from the flags.
func policyFrom(c *cli.Context, defMode string) (*compare.Policy, error) {
	var pol *compare.Policy
	var err error
	if f := c.String("tolerance"); f != "" {
		pol, err = compare.LoadPolicy(f)
	} else {
		mode := c.String("mode")
		if mode == pipeline.ModeCrossKernel {
			if c.Command.Name != "run" {
				return nil, fmt.Errorf("usage: --mode %s judges each op from the reference's inputs: it needs run (with --model), not %s", mode, c.Command.Name)
			}
			mode = compare.ModeGGML // the base of run's cross-kernel policy
		}
		if mode == "" {
			mode = defMode
		}
		pol, err = compare.DefaultPolicy(mode)
	}
	if err != nil {
		return nil, err
	}
	if v := c.Float64("rtol"); v >= 0 {
		pol.SetRTol(v)
	}
	if v := c.Float64("atol"); v >= 0 {
		pol.SetATol(v)
	}
	return pol, nil
}

// filterFrom builds the node filter from --layers and --filter.
func filterFrom(c *cli.Context) (func(compare.Node) bool, error) {
	var re *regexp.Regexp
	if f := c.String("filter"); f != "" {
		var err error
		if re, err = regexp.Compile(f); err != nil {
			return nil, fmt.Errorf("usage: --filter: %w", err)
		}
	}
	lo, hi := -1, -1
	if s := c.String("layers"); s != "" {
		a, b, ok := strings.Cut(s, "-")
		if !ok {
			b = a
		}
		var e1, e2 error
		lo, e1 = strconv.Atoi(strings.TrimSpace(a))
		hi, e2 = strconv.Atoi(strings.TrimSpace(b))
		if e1 != nil || e2 != nil || lo < 0 || hi < lo {
			return nil, fmt.Errorf("usage: --layers %q: want A-B with 0 <= A <= B", s)
		}
	}
	if re == nil && lo < 0 {
		return nil, nil
	}
	return func(n compare.Node) bool {
		if re != nil && !re.MatchString(n.Name) {
			return false
		}
		if lo >= 0 {
			if l := layerOf(n.Name); l >= 0 && (l < lo || l > hi) {
				return false
			}
		}
		return true
	}, nil
}

// checkOutputs refuses existing --out and --save files (without --force)
// before any work, so that a long run is not wasted and a refused --out
// does not leave a fresh --save behind.
func checkOutputs(c *cli.Context) error {
	if c.Bool("force") {
		return nil
	}
	for _, name := range []string{"save", "out"} {
		if p := c.String(name); p != "" {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s exists; use --force to replace it", p)
			}
		}
	}
	return nil
}

// emit holds the report to --min-coverage, renders it, saves it if asked,
// and turns a failing verdict into exit code 1.
func emit(c *cli.Context, rep *compare.Report) error {
	if err := requireCoverage(c, rep); err != nil {
		return err
	}
	if s := c.String("save"); s != "" {
		if err := writeFileAtomic(s, c.Bool("force"), func(w io.Writer) error { return compare.WriteJSON(w, rep) }); err != nil {
			return err
		}
	}
	if err := renderReport(c, rep); err != nil {
		return err
	}
	if rep.Verdict == compare.VerdictUnmeasured && rep.Summary.Unreadable > 0 {
		msg := fmt.Sprintf("%d files cannot be read", rep.Summary.Unreadable)
		for _, w := range rep.Warnings {
			if strings.Contains(w, " cannot be read (first: ") {
				msg = w
			}
		}
		return fmt.Errorf("incomplete comparison: %s", msg)
	}
	if rep.Verdict == compare.VerdictUnmeasured {
		return fmt.Errorf("nothing could be compared: no reference tensor has a measurable counterpart (%d unmeasured)%s", rep.Summary.Unmeasured, namesHint(rep))
	}
	if rep.Verdict == compare.VerdictFail {
		msg := "divergence found"
		if d := rep.FirstDivergence; d != nil {
			msg = fmt.Sprintf("divergence: first at %s (%s, layer %d)", d.Name, d.Op, d.Layer)
			if rep.CoverageInfo().BelowMin {
				msg += "; " + coverageFailure(rep)
			}
		} else if rep.CoverageInfo().BelowMin {
			msg = coverageFailure(rep)
		}
		msg += namesHint(rep)
		return &divergenceError{msg: msg}
	}
	return nil
}

func renderReport(c *cli.Context, rep *compare.Report) error {
	opts := render.Options{All: c.Bool("all")}
	out := c.String("out")
	if out == "" && c.String("format") == "text" && isTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "" {
		opts.Color = true
	}
	fn, err := opts.Lookup(c.String("format"))
	if err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	if out == "" {
		var buf bytes.Buffer
		if err := fn(&buf, rep); err != nil {
			return err
		}
		_, err := os.Stdout.Write(buf.Bytes())
		return err
	}
	return writeFileAtomic(out, c.Bool("force"), func(w io.Writer) error { return fn(w, rep) })
}

// writeFileAtomic writes path through a temporary file in the same
// directory, synced and renamed into place; an existing file is replaced
// only with force.
func writeFileAtomic(path string, force bool, write func(io.Writer) error) error {
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("%s exists; use --force to replace it", path)
	}
	return atomicfile.Write(path, write)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
