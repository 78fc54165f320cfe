package main

// The `layerdiff baseline` command: check, update and summary actions
// (docs/nightly.md, "layerdiff baseline") over package nightly.

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/nightly"
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
			&cli.Float64Flag{Name: "factor", Value: nightly.DefaultFactor, Usage: "check: growth factor F: metric ≤ max(F·baseline, floor)"},
			&cli.Float64Flag{Name: "nmse-floor", Value: nightly.DefaultNMSEFloor, Usage: "check: NMSE floor"},
			&cli.Float64Flag{Name: "max-abs-floor", Value: nightly.DefaultMaxAbsFloor, Usage: "check: max |a−b| floor"},
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

// readBaselineInput reads what check and update hold against the
// baseline: a result (--result), or the message of a cell that could not
// be run (--error).
func readBaselineInput(c *cli.Context) (*nightly.Input, error) {
	in := &nightly.Input{Baseline: c.String("baseline"), Cell: c.String("cell"), Error: strings.TrimSpace(c.String("error"))}
	res := c.String("result")
	if in.Baseline == "" || (res == "") == (in.Error == "") {
		return nil, errors.New("usage: --baseline and exactly one of --result and --error are required")
	}
	if c.NArg() > 1 {
		return nil, fmt.Errorf("usage: unexpected argument %q", c.Args().Get(1))
	}
	if in.Cell == "" {
		in.Cell = strings.TrimSuffix(filepath.Base(in.Baseline), ".json")
	}
	var err error
	if res != "" {
		if in.Result, err = nightly.LoadResult(res); err != nil {
			return nil, err
		}
	}
	if d := c.String("ref"); d != "" && in.Result != nil {
		if in.Ref, err = nightly.DescribeReference(d); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func baselineCheckAction(c *cli.Context) error {
	g := nightly.GrowthRule{Factor: c.Float64("factor"), NMSEFloor: c.Float64("nmse-floor"), MaxAbsFloor: c.Float64("max-abs-floor")}
	if err := g.Validate(); err != nil {
		return err
	}
	in, err := readBaselineInput(c)
	if err != nil {
		return err
	}
	chk, err := nightly.Check(in, g)
	if err != nil {
		return err
	}
	if out := c.String("out"); out != "" {
		if err := chk.WriteFile(out); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.App.Writer, chk.Line())
	for _, w := range chk.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "  warning:", w)
	}
	if chk.Failed() {
		return &divergenceError{}
	}
	return nil
}

func baselineUpdateAction(c *cli.Context) error {
	in, err := readBaselineInput(c)
	if err != nil {
		return err
	}
	b, err := nightly.Update(in)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%-11s %-26s %-14s %d tensors -> %s\n", "UPDATED", in.Cell, b.Verdict, len(b.Tensors), in.Baseline)
	return nil
}

func baselineSummaryAction(c *cli.Context) error {
	dir := c.String("dir")
	if dir == "" {
		return errors.New("usage: baseline summary needs --dir")
	}
	cells := c.Args().Slice()[1:]
	if len(cells) == 0 {
		return errors.New("usage: baseline summary needs the cell names as arguments")
	}
	var notes []nightly.Note
	for _, n := range c.StringSlice("note") {
		k, v, ok := strings.Cut(n, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("usage: --note %q: want KEY=VALUE", n)
		}
		notes = append(notes, nightly.Note{Key: strings.TrimSpace(k), Value: v})
	}
	checks := make([]*nightly.CellCheck, 0, len(cells))
	for _, cell := range cells {
		if cell == "" || strings.ContainsAny(cell, `/\`) || cell == "." || cell == ".." {
			return fmt.Errorf("usage: cell name %q is not a plain name", cell)
		}
		checks = append(checks, nightly.CellCheckFromDir(dir, cell))
	}
	if p := c.String("md"); p != "" {
		if err := writeFileAtomic(p, true, func(w io.Writer) error { return nightly.WriteSummaryMarkdown(w, checks, notes) }); err != nil {
			return err
		}
	}
	if p := c.String("junit"); p != "" {
		if err := writeFileAtomic(p, true, func(w io.Writer) error { return nightly.WriteSummaryJUnit(w, checks, notes) }); err != nil {
			return err
		}
	}
	failed := 0
	for _, ch := range checks {
		if ch.Failed() {
			failed++
		}
	}
	fmt.Fprintf(c.App.Writer, "nightly: %d cells, %d ok, %d failed\n", len(checks), len(checks)-failed, failed)
	if failed > 0 {
		return &divergenceError{}
	}
	return nil
}
