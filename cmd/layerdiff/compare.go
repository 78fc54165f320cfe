package main

import (
	"errors"
	"fmt"
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
		Flags:     append(append(append(compareModelFlags(), policyFlags()...), outputFlags()...), namesFlag("B")),
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
			// A float engine differs from llama.cpp's quantized CPU
			// arithmetic by far more than the ggml mode allows: without
			// --mode or --tolerance it is judged in the f64 mode, and
			// with --model by isolation.
			defMode, engine := compare.ModeGGML, !pipeline.IsLlamaCpp(b)
			if engine {
				defMode = compare.ModeF64
			}
			chosen := c.String("mode") != "" || c.String("tolerance") != ""
			pol, err := policyFrom(c, defMode)
			if err != nil {
				return err
			}
			filter, err := filterFrom(c)
			if err != nil {
				return err
			}
			co := pipeline.CompareOptions{Policy: pol, Filter: filter, Tool: "layerdiff " + version, Warnings: nameWarn}
			if c.String("model") != "" {
				if !chosen {
					co.Policy = nil // the f64 mode's, for the drift
				}
				mo := pipeline.ModelCompareOptions{CompareOptions: co, Prompt: c.String("prompt"), NoBOS: c.Bool("no-bos"), Kernels: c.String("kernels"), Threads: c.Int("threads"), HashModel: c.Bool("hash-model")}
				if s := c.String("tokens"); s != "" {
					if mo.Tokens, err = parseTokens(s); err != nil {
						return err
					}
				}
				rep, err := pipeline.CompareModel(a, b, c.String("model"), mo)
				if err != nil {
					return err
				}
				return emit(c, rep)
			}
			rep, err := pipeline.Compare(a, b, co)
			if err != nil {
				return err
			}
			if engine && !chosen {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s is not a llama.cpp dump: judged in the f64 mode (a float engine differs from llama.cpp's CPU arithmetic, which quantizes matmul activations to Q8_0 and rounds K/V to f16); give --model M.gguf to judge each op by isolation", c.Args().Get(1)))
			}
			pipeline.QuantizationHint(rep, engine)
			return emit(c, rep)
		},
	}
}

// compareModelFlags are compare's flags for isolation (--model).
func compareModelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Usage: "GGUF `FILE` both sides ran: judge each of B's ops by isolation (recomputed from B's own inputs with layerdiff's ops and the model's weights)"},
		&cli.StringFlag{Name: "prompt", Usage: "with --model: `TEXT` to tokenize when neither side records token ids"},
		&cli.StringFlag{Name: "tokens", Usage: "with --model: comma-separated token `IDS`"},
		&cli.BoolFlag{Name: "no-bos", Usage: "with --model: do not add BOS when tokenizing the prompt"},
		&cli.StringFlag{Name: "kernels", Usage: "with --model: kernel `PROFILE` of the recomputation in llama.cpp's arithmetic (default: the reference's)"},
		&cli.IntFlag{Name: "threads", Usage: "with --model: threads (0: all cores)"},
		&cli.BoolFlag{Name: "hash-model", Usage: "with --model: check the model by the SHA-256 of the whole file"},
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
