package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/urfave/cli/v2"
)

// dumpRequest is what `layerdiff dump` asks of the in-build llama.cpp.
type dumpRequest struct {
	Model, Prompt, Out, FlashAttn, KVType string
	Tokens                                []int32
	NoBOS, Force                          bool
	Batch, Threads                        int
	Filter                                *regexp.Regexp
}

func dumpCommand() *cli.Command {
	return &cli.Command{
		Name:      "dump",
		Usage:     "run llama.cpp on a model and a prompt and write the full tensor of every graph node",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "GGUF `FILE`"},
			&cli.StringFlag{Name: "prompt", Usage: "`TEXT` to tokenize (with BOS unless --no-bos)"},
			&cli.StringFlag{Name: "tokens", Usage: "comma-separated token `IDS` instead of a prompt"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "dump `DIR` to create"},
			&cli.StringFlag{Name: "flash-attn", Value: "auto", Usage: "auto, on or off"},
			&cli.StringFlag{Name: "kv-type", Value: "f16", Usage: "KV cache type: f16 or f32"},
			&cli.IntFlag{Name: "batch", Usage: "tokens per llama_decode call (0: all)"},
			&cli.IntFlag{Name: "threads", Usage: "threads (0: all cores)"},
			&cli.StringFlag{Name: "filter", Usage: "store data only for node names matching `REGEX` (every node is listed)"},
			&cli.BoolFlag{Name: "no-bos", Usage: "do not add BOS when tokenizing the prompt"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing non-empty output directory (and --log file)"},
			&cli.StringFlag{Name: "log", Usage: "also print the dump as llama.cpp's eval callback would to `FILE` (a text log, like llama-eval-callback's)"},
			&cli.StringFlag{Name: "log-format", Value: "new", Usage: "--log layout: old (ggml_debug:, 37-column indents) or new (common_debug_cb_eval:, 4-space indents)"},
		},
		Action: func(c *cli.Context) error {
			r := dumpRequest{
				Model: c.String("model"), Prompt: c.String("prompt"), Out: c.String("out"),
				FlashAttn: c.String("flash-attn"), KVType: c.String("kv-type"),
				NoBOS: c.Bool("no-bos"), Force: c.Bool("force"),
				Batch: c.Int("batch"), Threads: c.Int("threads"),
			}
			if r.Threads <= 0 {
				r.Threads = defaultThreads()
			}
			if s := c.String("tokens"); s != "" {
				toks, err := parseTokens(s)
				if err != nil {
					return err
				}
				r.Tokens = toks
			}
			if (r.Prompt == "") == (len(r.Tokens) == 0) {
				return fmt.Errorf("usage: give exactly one of --prompt and --tokens")
			}
			if f := c.String("filter"); f != "" {
				re, err := regexp.Compile(f)
				if err != nil {
					return fmt.Errorf("usage: --filter: %w", err)
				}
				r.Filter = re
			}
			logPath := c.String("log")
			logFormat, err := reference.ParseLogFormat(c.String("log-format"))
			if err != nil {
				return fmt.Errorf("usage: --log-format: %w", err)
			}
			if logPath != "" {
				if err := checkOverwrite(logPath, r.Force); err != nil {
					return err
				}
			}
			if err := llama.Dump(r, os.Stderr); err != nil {
				return err
			}
			if logPath == "" {
				return nil
			}
			return writeDumpLog(r.Out, r.Model, logPath, logFormat, r.Force)
		},
	}
}

// writeDumpLog prints the dump in dir as an eval-callback log of format f
// to path (atomically), naming the model's weights with their shapes.
func writeDumpLog(dir, modelPath, path string, f reference.LogFormat, force bool) error {
	d, err := reference.OpenDump(dir)
	if err != nil {
		return err
	}
	shapes, err := reference.WeightShapes(modelPath)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, force, func(w io.Writer) error {
		return reference.WriteLog(w, d, reference.LogOptions{Format: f, Shapes: shapes})
	})
}

// parseTokens parses "1,2, 3" into token ids.
func parseTokens(s string) ([]int32, error) {
	var out []int32
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("usage: --tokens item %d: %q is not a token id", i+1, f)
		}
		out = append(out, int32(v))
	}
	return out, nil
}
