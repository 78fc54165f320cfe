package forward

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// fixtureModel loads the F32 fixture c, generated in a temporary
// directory.
func fixtureModel(t testing.TB, c fixture.Config) *Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), c.Arch+".gguf")
	if err := fixture.Generate(c, path); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGraphMatchesGolden builds each architecture's graph and compares the
// node names, ops and shapes, in order, with llama.cpp's (testdata, written
// from real llama.cpp by TestGraphGoldensFromLlamaCpp).
func TestGraphMatchesGolden(t *testing.T) {
	for _, arch := range fixture.Archs {
		for _, fa := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/fa=%v", arch, fa), func(t *testing.T) {
				file := filepath.Join("testdata", goldenName(arch, fa))
				want := readGolden(t, file)
				var m *Model
				switch arch {
				case "llama", "qwen2", "qwen3":
					m = tinyModel(t, defaultTiny(arch))
				default: // the mixtures of experts: the fixture itself (pure Go)
					m = fixtureModel(t, fixture.Default(arch))
				}
				opts := DefaultOptions()
				opts.FlashAttn = fa
				var c Collector
				if _, err := m.Run(goldenTokens, opts, &c); err != nil {
					t.Fatal(err)
				}
				if len(c.Nodes) != len(want) {
					t.Errorf("%d nodes, llama.cpp %d", len(c.Nodes), len(want))
				}
				for i := 0; i < min(len(want), len(c.Nodes)); i++ {
					n := c.Nodes[i]
					ne := n.Ne
					g := fmt.Sprintf("%s|%s|%d,%d,%d,%d", n.Name, n.Op, ne[0], ne[1], ne[2], ne[3])
					w := strings.Replace(want[i], "|n_vocab,", fmt.Sprintf("|%d,", m.Hparams.NVocab), 1)
					if g != w {
						t.Errorf("node %d: %s, llama.cpp %s", i, g, w)
					}
				}
			})
		}
	}
}

func readGolden(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunIsDeterministic checks that results do not depend on the thread
// count and that ggml and f64 numerics agree closely and on the argmax.
func TestRunIsDeterministic(t *testing.T) {
	for _, w := range []quant.Type{quant.F32, quant.F16, quant.Q8_0} {
		cfg := defaultTiny("llama")
		cfg.weight = w
		cfg.ropeFreqs = true
		cfg.tied = true
		m := tinyModel(t, cfg)
		toks := []int32{1, 5, 9, 100, 200, 300, 400}
		var base []float32
		for _, threads := range []int{1, 2, 7} {
			opts := DefaultOptions()
			opts.Threads = threads
			lg, err := m.Run(toks, opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			if base == nil {
				base = lg.Data
				continue
			}
			for i := range base {
				if base[i] != lg.Data[i] {
					t.Fatalf("%s: threads=%d: logit %d = %g, threads=1 %g", w, threads, i, lg.Data[i], base[i])
				}
			}
		}
		opts := DefaultOptions()
		opts.Numerics = NumericsF64
		ex, err := m.Run(toks, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		nv := m.Hparams.NVocab
		var num, den float64
		for p := range toks {
			a, b := base[p*nv:(p+1)*nv], ex.Data[p*nv:(p+1)*nv]
			if argmax(a) != argmax(b) {
				t.Errorf("%s: position %d: argmax ggml %d, f64 %d", w, p, argmax(a), argmax(b))
			}
			for i := range a {
				d := float64(a[i]) - float64(b[i])
				num += d * d
				den += float64(b[i]) * float64(b[i])
			}
		}
		// The F16 KV cache and F16 flash attention leave ~1e-7 even with
		// F32 weights; Q8_0 activations add ~1e-4.
		limit := 1e-5
		if w == quant.Q8_0 {
			limit = 1e-3
		}
		if num/den > limit {
			t.Errorf("%s: NMSE ggml vs f64 %.3g > %g", w, num/den, limit)
		}
		t.Logf("%s: NMSE ggml vs f64 logits %.3g", w, num/den)
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
