package main

// The `layerdiff baseline` command: check, update and summary actions
// (docs/nightly.md, "layerdiff baseline").

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/urfave/cli/v2"
)

// baselineCommand is hidden: scripts/nightly.sh drives it. It is one
// command with the action as its first argument (rather than subcommands)
// so that permuteArgs may move flags in front of it.
func baselineCommand() *cli.Command {
	return &cli.Command{
		Name:   "baseline",
		Hidden: true,
		Usage:  "nightly regression baselines: check, update, summary (scripts/nightly.sh, docs/nightly.md)",
		UsageText: "layerdiff baseline check   --result R.json | --error MSG  --baseline B.json [--ref DUMP] [--cell NAME]\n" +
			"                             [--factor F] [--nmse-floor X] [--max-abs-floor Y] [--out CHECK.json]\n" +
			"   layerdiff baseline update  --result R.json | --error MSG  --baseline B.json [--ref DUMP] [--cell NAME]\n" +
			"   layerdiff baseline summary --dir CELLS [--md SUMMARY.md] [--junit JUNIT.xml] [--note KEY=VALUE ...] CELL...",
		Description: "check exits 0 when the result matches its baseline, 1 when it regressed or changed\n" +
			"(or has no baseline, or could not be run as --error says and the baseline does not record\n" +
			"that), 2 on bad input. summary exits 1 when any cell failed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "result", Usage: "check, update: saved result `FILE` (layerdiff run --save)"},
			&cli.StringFlag{Name: "error", Usage: "check, update: the cell could not be run, with this `MESSAGE` (instead of --result)"},
			&cli.StringFlag{Name: "baseline", Usage: "check, update: baseline JSON `FILE`"},
			&cli.StringFlag{Name: "ref", Usage: "check, update: the reference dump `DIR` (records llama.cpp's system info)"},
			&cli.StringFlag{Name: "cell", Usage: "check, update: cell `NAME` (default: the baseline file name without .json)"},
			&cli.Float64Flag{Name: "factor", Value: defaultGrowthFactor, Usage: "check: growth factor F: metric ≤ max(F·baseline, floor)"},
			&cli.Float64Flag{Name: "nmse-floor", Value: defaultNMSEFloor, Usage: "check: NMSE floor"},
			&cli.Float64Flag{Name: "max-abs-floor", Value: defaultMaxAbsFloor, Usage: "check: max |a−b| floor"},
			&cli.StringFlag{Name: "out", Usage: "check: also write the check as JSON to `FILE` (for summary)"},
			&cli.StringFlag{Name: "dir", Usage: "summary: `DIR` holding CELL/check.json (and CELL/log.txt)"},
			&cli.StringFlag{Name: "md", Usage: "summary: markdown `FILE` to write"},
			&cli.StringFlag{Name: "junit", Usage: "summary: JUnit XML `FILE` to write"},
			&cli.StringSliceFlag{Name: "note", Usage: "summary: `KEY=VALUE` line for the summary's header; repeatable"},
		},
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "check":
				return baselineCheckAction(c)
			case "update":
				return baselineUpdateAction(c)
			case "summary":
				return baselineSummaryAction(c)
			case "":
				return errors.New("usage: layerdiff baseline check|update|summary [flags]")
			}
			return fmt.Errorf("usage: layerdiff baseline: unknown action %q (want check, update or summary)", c.Args().First())
		},
	}
}

// baselineInput is what check and update read: a result, or the message of
// a cell that could not be run.
type baselineInput struct {
	cell, path string // cell name, baseline file
	rep        *compare.Report
	errMsg     string
	ref        *reference.Info
}

func readBaselineInput(c *cli.Context) (*baselineInput, error) {
	in := &baselineInput{path: c.String("baseline"), cell: c.String("cell"), errMsg: strings.TrimSpace(c.String("error"))}
	res := c.String("result")
	if in.path == "" || (res == "") == (in.errMsg == "") {
		return nil, errors.New("usage: --baseline and exactly one of --result and --error are required")
	}
	if c.NArg() > 1 {
		return nil, fmt.Errorf("usage: unexpected argument %q", c.Args().Get(1))
	}
	if in.cell == "" {
		in.cell = strings.TrimSuffix(filepath.Base(in.path), ".json")
	}
	if res != "" {
		rep, err := loadResult(res)
		if err != nil {
			return nil, err
		}
		in.rep = rep
	}
	if d := c.String("ref"); d != "" && in.rep != nil {
		src, err := reference.Open(d)
		if err != nil {
			return nil, err
		}
		info := src.Describe()
		in.ref = &info
		if cl, ok := src.(io.Closer); ok {
			cl.Close()
		}
	}
	return in, nil
}

func baselineCheckAction(c *cli.Context) error {
	g := growthRule{Factor: c.Float64("factor"), NMSEFloor: c.Float64("nmse-floor"), MaxAbsFloor: c.Float64("max-abs-floor")}
	if err := g.validate(); err != nil {
		return err
	}
	in, err := readBaselineInput(c)
	if err != nil {
		return err
	}
	b, err := loadBaseline(in.path)
	missing := errors.Is(err, os.ErrNotExist)
	if err != nil && !missing {
		return err
	}
	var chk *cellCheck
	switch {
	case in.rep == nil:
		chk = checkError(in.cell, in.errMsg, b, in.path)
	case missing:
		chk = &cellCheck{
			Cell: in.cell, Outcome: outcomeNoBaseline, Verdict: in.rep.Verdict, Mode: in.rep.Meta.Mode,
			Tensors: len(in.rep.Tensors), Fail: in.rep.Summary.Fail, Rule: g, Baseline: in.path,
			Findings: []finding{}, Warnings: []string{},
			Message: fmt.Sprintf("no baseline %s: record it with scripts/nightly.sh --update-baselines", in.path),
		}
	default:
		chk = checkBaseline(in.cell, in.rep, b, in.ref, g)
		chk.Baseline = in.path
	}
	if out := c.String("out"); out != "" {
		if err := writeJSONFile(out, chk); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.App.Writer, chk.line())
	for _, w := range chk.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "  warning:", w)
	}
	if chk.failed() {
		return &divergenceError{}
	}
	return nil
}

func baselineUpdateAction(c *cli.Context) error {
	in, err := readBaselineInput(c)
	if err != nil {
		return err
	}
	var b *baseline
	if in.rep != nil {
		b = newBaseline(in.cell, in.rep, in.ref)
	} else {
		b = &baseline{Schema: baselineSchema, Cell: in.cell, Verdict: verdictError, Error: in.errMsg, Tensors: []baselineTensor{}}
	}
	if err := os.MkdirAll(filepath.Dir(in.path), 0o755); err != nil {
		return err
	}
	if err := writeFileAtomic(in.path, true, func(w io.Writer) error { return writeBaseline(w, b) }); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%-11s %-26s %-14s %d tensors -> %s\n", "UPDATED", in.cell, b.Verdict, len(b.Tensors), in.path)
	return nil
}
