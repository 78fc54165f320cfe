package main

import (
	"errors"
	"os"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/pipeline"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
	"github.com/urfave/cli/v2"
)

func layerOf(name string) int { return tensor.Layer(name) }

func compareCommand() *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "compare two references (dumps, .npy directories, llama.cpp logs)",
		ArgsUsage: "A B",
		Flags:     append(append(policyFlags(), outputFlags()...), namesFlag("B")),
		Action: func(c *cli.Context) error {
			tuneGC()
			if c.NArg() != 2 {
				return errors.New("usage: layerdiff compare A B [flags]")
			}
			if err := checkOutputs(c); err != nil {
				return err
			}
			a, err := reference.Open(c.Args().Get(0))
			if err != nil {
				return err
			}
			b, err := reference.Open(c.Args().Get(1))
			if err != nil {
				return err
			}
			b, nameWarn, err := withNames(c, b, a, c.String("model"))
			if err != nil {
				return err
			}
			pol, err := policyFrom(c, compare.ModeGGML)
			if err != nil {
				return err
			}
			filter, err := filterFrom(c)
			if err != nil {
				return err
			}
			rep, err := pipeline.Compare(a, b, pipeline.CompareOptions{Policy: pol, Filter: filter, Tool: "layerdiff " + version, Warnings: nameWarn})
			if err != nil {
				return err
			}
			return emit(c, rep)
		},
	}
}

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "re-render a saved result (run/compare --save)",
		ArgsUsage: " ",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "saved result JSON `FILE`"},
		}, outputFlags()...),
		Action: func(c *cli.Context) error {
			if err := checkOutputs(c); err != nil {
				return err
			}
			f, err := os.Open(c.String("in"))
			if err != nil {
				return err
			}
			defer f.Close()
			rep, err := compare.ReadJSON(f, c.String("in"))
			if err != nil {
				return err
			}
			return emit(c, rep)
		},
	}
}
