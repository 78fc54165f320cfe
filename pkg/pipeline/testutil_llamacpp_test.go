//go:build llamacpp

package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// workDir holds the fixtures and dumps the tests share; TestMain removes it.
var workDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "pipeline-acceptance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	workDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

var (
	cacheMu sync.Mutex
	made    = map[string]string{}
	dumps   = map[string]*reference.Dump{}
)

// fixtureModel returns a fixture of arch (fixture.Default) with the given
// perturbations applied to its F32 weights, quantized to typ by llama.cpp.
// Models are made once per test binary.
func fixtureModel(t testing.TB, arch, typ string, ps ...fixture.Perturbation) string {
	t.Helper()
	q, ok := fixture.QuantOf(typ) // as `layerdiff fixture --type` does
	tt, byTensor := fixture.TensorType(typ)
	if !ok && !byTensor {
		t.Fatalf("unknown type %q", typ)
	}
	var desc []string
	for _, p := range ps {
		desc = append(desc, p.String())
	}
	key := arch + "|" + typ + "|" + strings.Join(desc, "|")
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if p, ok := made[key]; ok {
		return p
	}
	h := sha256.Sum256([]byte(key))
	stem := filepath.Join(workDir, fmt.Sprintf("%s-%s-%s", arch, typ, hex.EncodeToString(h[:4])))
	f32 := stem + "-f32.gguf"
	if err := fixture.GeneratePerturbed(fixture.Default(arch), f32, ps...); err != nil {
		t.Fatal(err)
	}
	out := f32
	if q.Ftype != 0 || byTensor {
		out = stem + ".gguf"
		p := llamacpp.QuantizeParams{Ftype: q.Ftype, Threads: 2, Pure: q.Pure, TokenEmbdType: q.TokenEmbd, OutputType: q.Output}
		if byTensor {
			if err := fixture.QuantizeTensors(f32, out, tt, func(t quant.Type, src []float32, nrows, nPerRow int) ([]byte, error) {
				return llamacpp.QuantizeChunk(int(t), src, nrows, nPerRow)
			}); err != nil {
				t.Fatalf("quantizing %s to %s: %v", key, typ, err)
			}
		} else if err := llamacpp.Quantize(f32, out, p); err != nil {
			t.Fatalf("quantizing %s to %s: %v", key, typ, err)
		}
		os.Remove(f32)
	}
	made[key] = out
	return out
}

// dumpOf dumps model with the in-build llama.cpp (flash attention fa:
// "on", "off" or "auto"), once per test binary.
func dumpOf(t testing.TB, modelPath, fa string) *reference.Dump {
	t.Helper()
	key := modelPath + "|" + fa
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if d, ok := dumps[key]; ok {
		return d
	}
	out := strings.TrimSuffix(modelPath, ".gguf") + "-dump-" + fa
	if _, err := reference.DumpLlamaCpp(reference.DumpOptions{Model: modelPath, Prompt: acceptPrompt, Out: out, FlashAttn: fa, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	d, err := reference.OpenDump(out)
	if err != nil {
		t.Fatal(err)
	}
	dumps[key] = d
	return d
}

// writeLog prints dump as an eval-callback log of format f and reads it
// back.
func writeLog(t testing.TB, d *reference.Dump, modelPath string, f reference.LogFormat) *reference.Log {
	t.Helper()
	shapes, err := reference.WeightShapes(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.Dir + "-" + f.String() + ".log")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := reference.WriteLog(w, d, reference.LogOptions{Format: f, Shapes: shapes}); err != nil {
		w.Close()
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := reference.ReadLog(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// summary describes a report in one line for failure messages.
func summary(r *compare.Report) string {
	s := fmt.Sprintf("verdict %s (%d pass, %d fail, %d unmeasured)", r.Verdict, r.Summary.Pass, r.Summary.Fail, r.Summary.Unmeasured)
	if d := r.FirstDivergence; d != nil {
		s += fmt.Sprintf("; first divergence %s (%s %s): %s", d.Key, d.Name, d.Op, strings.Join(d.Reasons, "; "))
	}
	if b := r.Blame; b != nil {
		s += fmt.Sprintf("; blame %s (%s %s) by %s", b.Key, b.Name, b.Op, b.By)
	}
	return s
}

// wantAt checks that r fails, first at the node key (name, op), and that
// the blame (by blamer "by") names the same node.
func wantAt(t *testing.T, what string, r *compare.Report, key, name, op, by string) {
	t.Helper()
	d, b := r.FirstDivergence, r.Blame
	switch {
	case r.Verdict != compare.VerdictFail || d == nil:
		t.Errorf("%s: not caught: %s", what, summary(r))
	case d.Key != key || d.Name != name || d.Op != op:
		t.Errorf("%s: first divergence %s (%s %s), want %s (%s %s): %s", what, d.Key, d.Name, d.Op, key, name, op, summary(r))
	case b == nil:
		t.Errorf("%s: no blame: %s (warnings %q)", what, summary(r), r.Warnings)
	case b.Key != key || b.Name != name || b.Op != op || b.By != by:
		t.Errorf("%s: blamed %s (%s %s) by %s, want %s (%s %s) by %s; evidence %q", what, b.Key, b.Name, b.Op, b.By, key, name, op, by, b.Evidence)
	}
}

// wantPass checks that r passes.
func wantPass(t *testing.T, what string, r *compare.Report) {
	t.Helper()
	if r.Verdict != compare.VerdictPass {
		t.Errorf("%s: false alarm: %s", what, summary(r))
	}
}
