//go:build llamacpp

package pipeline

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// TestRunMicroBatchedDump runs layerdiff against llama.cpp dumps of a
// prompt decoded in calls of 3 tokens (`layerdiff dump --batch 3`), with
// flash attention on and off: the forward pass splits the prompt the same
// way and every tensor of every micro-batch is bit-identical.
func TestRunMicroBatchedDump(t *testing.T) {
	m := fixtureModel(t, "llama", "q4_k_m")
	for _, fa := range []string{"on", "off"} {
		out := filepath.Join(t.TempDir(), "dump")
		if _, err := reference.DumpLlamaCpp(reference.DumpOptions{Model: m, Prompt: acceptPrompt, Out: out, FlashAttn: fa, Batch: 3, Threads: 2}); err != nil {
			t.Fatal(err)
		}
		d, err := reference.OpenDump(out)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := graphRuns(d.Nodes()); n < 2 {
			t.Fatalf("fa %s: the dump's graph ran %d times; the prompt must span several calls of 3 tokens", fa, n)
		}
		rep, err := Run(d, m, RunOptions{Threads: 2, CompareOptions: CompareOptions{Policy: compare.MustPolicy(compare.ModeBitExact)}})
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("fa %s, %d tokens in calls of 3", fa, len(d.Manifest.Tokens))
		wantPass(t, what, rep)
		if rep.Summary.Pass != len(d.Nodes()) {
			t.Errorf("%s: %d of %d tensors pass", what, rep.Summary.Pass, len(d.Nodes()))
		}
		// The same run printed as llama.cpp's eval-callback log (one graph
		// per call, as llama-eval-callback prints a long prompt): the
		// split is read from the log's shapes.
		for _, f := range []reference.LogFormat{reference.LogFormatOld, reference.LogFormatNew} {
			l := writeLog(t, d, m, f)
			rep, err := Run(l, m, RunOptions{Threads: 2, Tokens: d.Manifest.Tokens})
			if err != nil {
				t.Fatalf("%s, log %s: %v", what, f, err)
			}
			wantPass(t, what+", log "+f.String(), rep)
		}
	}
}
