package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/urfave/cli/v2"
)

// fixtureFtypes maps `layerdiff fixture --type` to llama.cpp's llama_ftype
// (what llama-quantize is given). q3_k is llama-quantize's Q3_K_S (every
// matrix Q3_K); q4_k_m and q5_k_m are the usual mixes.
var fixtureFtypes = map[string]int{
	"f32": 0, "f16": 1, "bf16": 32,
	"q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9,
	"q2_k": 10, "q3_k": 11, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18,
	"iq4_nl": 25, "iq4_xs": 30,
}

func fixtureTypeNames() []string {
	var s []string
	for k := range fixtureFtypes {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

func fixtureCommand() *cli.Command {
	d := fixture.Default("llama")
	return &cli.Command{
		Name:      "fixture",
		Usage:     "generate a small random-weight llama/qwen2/qwen3 GGUF model",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "arch", Value: "llama", Usage: "architecture: " + strings.Join(fixture.Archs, ", ")},
			&cli.StringFlag{Name: "type", Value: "q8_0", Usage: "tensor type: " + strings.Join(fixtureTypeNames(), ", ")},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed (same seed, same file)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output GGUF `FILE`"},
			&cli.IntFlag{Name: "embd", Value: d.Embd, Usage: "embedding length"},
			&cli.IntFlag{Name: "layers", Value: d.Layers, Usage: "number of layers"},
			&cli.IntFlag{Name: "heads", Value: d.Heads, Usage: "attention heads"},
			&cli.IntFlag{Name: "kv-heads", Value: d.KVHeads, Usage: "key/value heads (GQA when fewer than heads)"},
			&cli.IntFlag{Name: "head-dim", Value: 0, Usage: "head dimension (0: embd/heads)"},
			&cli.IntFlag{Name: "ff", Value: d.FF, Usage: "feed-forward length"},
			&cli.IntFlag{Name: "vocab-size", Value: d.VocabSize, Usage: "size of the built-in vocabulary"},
			&cli.IntFlag{Name: "ctx", Value: d.Ctx, Usage: "context length"},
			&cli.Float64Flag{Name: "rope-base", Value: float64(d.RopeBase), Usage: "RoPE frequency base"},
			&cli.Float64Flag{Name: "rms-eps", Value: float64(d.RMSEps), Usage: "RMS norm epsilon"},
			&cli.BoolFlag{Name: "tied", Usage: "no output.weight: reuse the token embeddings"},
			&cli.StringFlag{Name: "vocab", Usage: "copy the tokenizer of this GGUF `FILE`"},
			&cli.IntFlag{Name: "threads", Value: 0, Usage: "quantization threads (0: all)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite an existing output file"},
		},
		Action: func(c *cli.Context) error {
			cfg := fixture.Config{
				Arch: c.String("arch"), Seed: c.Uint64("seed"),
				Embd: c.Int("embd"), Layers: c.Int("layers"), Heads: c.Int("heads"), KVHeads: c.Int("kv-heads"),
				HeadDim: c.Int("head-dim"), FF: c.Int("ff"), VocabSize: c.Int("vocab-size"), Ctx: c.Int("ctx"),
				RopeBase: float32(c.Float64("rope-base")), RMSEps: float32(c.Float64("rms-eps")), Tied: c.Bool("tied"),
			}
			typ := strings.ToLower(c.String("type"))
			ftype, ok := fixtureFtypes[typ]
			if !ok {
				return fmt.Errorf("usage: unknown --type %q (want one of %s)", typ, strings.Join(fixtureTypeNames(), ", "))
			}
			out := c.String("out")
			if err := checkOverwrite(out, c.Bool("force")); err != nil {
				return err
			}
			if v := c.String("vocab"); v != "" {
				f, err := model.Open(v)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.Vocab = f
			}
			return makeFixture(cfg, ftype, out, c.Int("threads"))
		},
	}
}

// makeFixture writes the F32 model, then has llama.cpp quantize it, and
// renames the result into place. Both steps stream tensor by tensor, so
// memory stays small whatever the model's size, but the F32 intermediate
// (4 bytes per parameter: 27 GB for a LLaMA-2-7B geometry) needs room on
// disk next to out until the quantized file is written.
func makeFixture(cfg fixture.Config, ftype int, out string, threads int) error {
	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fixture %s: %w", out, err)
	}
	f32, err := os.CreateTemp(dir, ".layerdiff-fixture-*.gguf")
	if err != nil {
		return fmt.Errorf("fixture %s: %w", out, err)
	}
	f32.Close()
	defer os.Remove(f32.Name())
	if err := fixture.Generate(cfg, f32.Name()); err != nil {
		return fmt.Errorf("fixture %s: %w", out, err)
	}
	if ftype == 0 {
		return os.Rename(f32.Name(), out)
	}
	q, err := os.CreateTemp(dir, ".layerdiff-fixture-q-*.gguf")
	if err != nil {
		return fmt.Errorf("fixture %s: %w", out, err)
	}
	q.Close()
	defer os.Remove(q.Name())
	if err := llama.QuantizeModel(f32.Name(), q.Name(), ftype, threads); err != nil {
		return fmt.Errorf("fixture %s: %w", out, err)
	}
	// The F32 file is not needed any more: free its disk space now.
	os.Remove(f32.Name())
	// CreateTemp made q private; give it the F32 file's mode (WriteFile's).
	if err := os.Chmod(q.Name(), 0o644); err != nil {
		return fmt.Errorf("fixture %s: %w", out, err)
	}
	return os.Rename(q.Name(), out)
}

// checkOverwrite refuses to replace an existing file or non-empty directory
// unless force is set.
func checkOverwrite(path string, force bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if force {
		return nil
	}
	if st.IsDir() {
		ents, _ := os.ReadDir(path)
		if len(ents) == 0 {
			return nil
		}
		return fmt.Errorf("%s exists and is not empty; use --force to replace it", path)
	}
	return fmt.Errorf("%s exists; use --force to replace it", path)
}
