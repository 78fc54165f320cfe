package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/urfave/cli/v2"
)

func fixtureCommand() *cli.Command {
	d := fixture.Default("llama")
	return &cli.Command{
		Name:      "fixture",
		Usage:     "generate a small random-weight GGUF model (" + strings.Join(fixture.Archs, ", ") + ")",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "arch", Value: "llama", Usage: "architecture: " + strings.Join(fixture.Archs, ", ")},
			&cli.StringFlag{Name: "type", Value: "q8_0", Usage: "tensor type: " + strings.Join(fixture.TypeNames(), ", ")},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed (same seed, same file)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output GGUF `FILE`"},
			&cli.IntFlag{Name: "embd", Value: d.Embd, Usage: "embedding length"},
			&cli.IntFlag{Name: "layers", Value: 0, Usage: fmt.Sprintf("number of layers (0: the architecture's default, %d; gemma3 %d)", d.Layers, fixture.Default("gemma3").Layers)},
			&cli.IntFlag{Name: "heads", Value: d.Heads, Usage: "attention heads"},
			&cli.IntFlag{Name: "kv-heads", Value: d.KVHeads, Usage: "key/value heads (GQA when fewer than heads)"},
			&cli.IntFlag{Name: "head-dim", Value: 0, Usage: "head dimension (0: embd/heads)"},
			&cli.IntFlag{Name: "ff", Value: d.FF, Usage: "feed-forward length (mixtral: the experts' width)"},
			&cli.IntFlag{Name: "experts", Value: 0, Usage: "qwen3moe, mixtral: number of experts (0: 4)"},
			&cli.IntFlag{Name: "experts-used", Value: 0, Usage: "qwen3moe, mixtral: experts per token (0: 2)"},
			&cli.IntFlag{Name: "ff-exp", Value: 0, Usage: "qwen3moe: the experts' width, expert_feed_forward_length (0: 256)"},
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
				Embd: c.Int("embd"), Layers: fixtureLayers(c.Int("layers"), c.String("arch")), Heads: c.Int("heads"), KVHeads: c.Int("kv-heads"),
				HeadDim: c.Int("head-dim"), FF: c.Int("ff"), VocabSize: c.Int("vocab-size"), Ctx: c.Int("ctx"),
				RopeBase: float32(c.Float64("rope-base")), RMSEps: float32(c.Float64("rms-eps")), Tied: c.Bool("tied"),
				Experts: c.Int("experts"), ExpertsUsed: c.Int("experts-used"), FFExp: c.Int("ff-exp"),
			}
			typ := strings.ToLower(c.String("type"))
			q, ok := fixture.QuantOf(typ)
			tensorType, byTensor := fixture.TensorType(typ)
			if !ok && !byTensor {
				return fmt.Errorf("usage: unknown --type %q (want one of %s)", typ, strings.Join(fixture.TypeNames(), ", "))
			}
			out := c.String("out")
			if err := checkOverwrite(out, c.Bool("force")); err != nil {
				return err
			}
			if v := c.String("vocab"); v != "" {
				f, err := gguf.Open(v)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.Vocab = f
			}
			threads := c.Int("threads")
			if byTensor {
				// every matrix quantized to the type by ggml_quantize_chunk
				// (no llama_ftype makes such a model: fixture.TensorType)
				return fixture.WriteTensorQuantized(cfg, tensorType, out, func(t quant.Type, src []float32, nrows, nPerRow int) ([]byte, error) {
					return llama.QuantizeTensor(t, src, nrows, nPerRow, threads)
				})
			}
			return fixture.WriteQuantized(cfg, q, out, func(in, out string, q fixture.Quant) error {
				return llama.Quantize(in, out, q, threads)
			})
		},
	}
}

// fixtureLayers is the --layers value, 0 meaning the architecture's
// default (fixture.Default).
func fixtureLayers(n int, arch string) int {
	if n == 0 {
		return fixture.Default(arch).Layers
	}
	return n
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
