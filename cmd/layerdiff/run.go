package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/pipeline"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/urfave/cli/v2"
)

func runCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "ref", Required: true, Usage: "reference: a dump `DIR`, a .npy directory, an eval-callback/llama-debug log, or a --save-logits directory"},
		&cli.StringFlag{Name: "model", Required: true, Usage: "GGUF `FILE` to run with layerdiff's forward pass"},
		&cli.StringFlag{Name: "prompt", Usage: "`TEXT` to tokenize when the reference has no token ids"},
		&cli.StringFlag{Name: "tokens", Usage: "comma-separated token `IDS`"},
		&cli.BoolFlag{Name: "no-bos", Usage: "do not add BOS when tokenizing the prompt"},
		&cli.StringFlag{Name: "numerics", Value: "ggml", Usage: "ggml (llama.cpp's CPU arithmetic) or f64 (exact)"},
		&cli.StringFlag{Name: "kernels", Usage: "kernel `PROFILE` the ggml numerics emulate: " + strings.Join(forward.KernelProfiles(), ", ") + " (default: the reference's own, from its system_info)"},
		&cli.StringFlag{Name: "flash-attn", Value: "auto", Usage: "auto (as the reference), on or off"},
		&cli.StringFlag{Name: "kv-type", Value: "auto", Usage: "KV cache type: auto (the dump's type_k, else f16), f16 or f32"},
		&cli.IntFlag{Name: "threads", Usage: "threads (0: all cores)"},
		&cli.StringSliceFlag{Name: "inject", Usage: "perturb an activation: `NAME:KIND=VALUE` (scale, add, swap, transpose, sign, shift); repeatable"},
		&cli.BoolFlag{Name: "isolate", Usage: "recompute every op from the reference's inputs, not only up to the first divergence"},
		&cli.BoolFlag{Name: "timings", Hidden: true, Usage: "print how long each phase took to stderr"},
		namesFlag("--ref"),
		&cli.BoolFlag{Name: "hash-model", Usage: "check the model against the reference by the SHA-256 of the whole file (slow on large models) even above 256 MiB, where the fingerprint (metadata and samples of every tensor) is used otherwise"},
	}
	return &cli.Command{
		Name:      "run",
		Usage:     "run layerdiff's forward pass and compare every activation with a reference",
		ArgsUsage: " ",
		Flags:     append(append(flags, policyFlags()...), outputFlags()...),
		Action: func(c *cli.Context) error {
			tuneGC()
			if err := checkOutputs(c); err != nil {
				return err
			}
			ref, err := reference.Open(c.String("ref"))
			if err != nil {
				return err
			}
			ref, nameWarn, err := withNames(c, ref, nil, c.String("model"))
			if err != nil {
				return err
			}
			// cross-kernel: asked for by --mode, chosen by run itself when
			// neither --mode nor --tolerance says otherwise.
			cross, mode := "off", c.String("numerics")
			switch {
			case c.String("tolerance") != "":
			case c.String("mode") == pipeline.ModeCrossKernel:
				cross = "on"
			case c.String("mode") == "":
				cross = "auto"
			}
			pol, err := policyFrom(c, mode)
			if err != nil {
				return err
			}
			filter, err := filterFrom(c)
			if err != nil {
				return err
			}
			o := pipeline.RunOptions{
				CompareOptions: pipeline.CompareOptions{Policy: pol, Filter: filter, Tool: "layerdiff " + version, Warnings: nameWarn},
				Prompt:         c.String("prompt"), NoBOS: c.Bool("no-bos"),
				Numerics: c.String("numerics"), Kernels: c.String("kernels"), CrossKernel: cross, FlashAttn: c.String("flash-attn"), KVType: c.String("kv-type"),
				Threads: c.Int("threads"), Isolate: c.Bool("isolate"), HashModel: c.Bool("hash-model"),
			}
			if s := c.String("tokens"); s != "" {
				if o.Tokens, err = parseTokens(s); err != nil {
					return err
				}
			}
			for _, s := range c.StringSlice("inject") {
				inj, err := pipeline.ParseInjection(s)
				if err != nil {
					return err
				}
				o.Inject = append(o.Inject, inj)
			}
			if f := c.String("filter"); f != "" {
				o.NodeFilter = regexp.MustCompile(f) // validated by filterFrom
			}
			start := time.Now()
			if c.Bool("timings") {
				o.Timings = func(phase string, d time.Duration) {
					fmt.Fprintf(os.Stderr, "timing: %-8s %.3fs\n", phase, d.Seconds())
				}
			}
			rep, err := pipeline.Run(ref, c.String("model"), o)
			if err != nil {
				return err
			}
			t := time.Now()
			err = emit(c, rep)
			if c.Bool("timings") {
				fmt.Fprintf(os.Stderr, "timing: %-8s %.3fs\ntiming: %-8s %.3fs (since the command started)\n", "report", time.Since(t).Seconds(), "total", time.Since(start).Seconds())
			}
			return err
		},
	}
}
