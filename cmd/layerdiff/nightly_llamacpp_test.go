//go:build llamacpp

package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/nightly"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// nightlyTiny is the two-cell matrix the test runs: one fixture, one dump,
// both numerics modes.
var nightlyTiny = []string{"NIGHTLY_ARCHS=llama", "NIGHTLY_TYPES=q8_0", "NIGHTLY_NUMERICS=ggml,f64", "NIGHTLY_FA=on"}

var nightlyTinyCells = []string{"llama-q8_0-ggml-faon", "llama-q8_0-f64-faon"}

// TestNightlyScript runs scripts/nightly.sh end to end on a two-cell
// matrix: it records baselines, passes against them, catches a tampered
// baseline (a regression and an improvement), and checks the committed
// baselines when they were recorded on a CPU with the same SIMD features.
func TestNightlyScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds layerdiff and runs llama.cpp")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "layerdiff")
	// Same flags as make build, so the llama.cpp objects come from the Go
	// build cache.
	build := exec.Command("bash", "-c", `. scripts/env.sh && go build -tags llamacpp -o "$1" ./cmd/layerdiff`, "build", bin)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building layerdiff: %v\n%s", err, out)
	}
	out := filepath.Join(tmp, "nightly")
	cache := filepath.Join(tmp, "cache")
	bl := filepath.Join(tmp, "baselines")
	nightlySh := func(t *testing.T, baselines string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(root, "scripts", "nightly.sh"), args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), nightlyTiny...)
		cmd.Env = append(cmd.Env, "LAYERDIFF="+bin, "NIGHTLY_OUT="+out, "NIGHTLY_CACHE="+cache, "NIGHTLY_BASELINES="+baselines, "NIGHTLY_THREADS=2")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		code := 0
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatalf("nightly.sh: %v", err)
			}
			code = ee.ExitCode()
		}
		return buf.String(), code
	}
	junit := func(t *testing.T) junitCounts {
		t.Helper()
		var doc junitCounts
		data, err := os.ReadFile(filepath.Join(out, "junit.xml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("junit.xml: %v", err)
		}
		return doc
	}

	t.Run("update", func(t *testing.T) {
		log, code := nightlySh(t, bl, "--update-baselines")
		if code != 0 {
			t.Fatalf("nightly.sh --update-baselines: exit %d\n%s", code, log)
		}
		for _, cell := range nightlyTinyCells {
			b, err := nightly.LoadBaseline(filepath.Join(bl, cell+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if b.Cell != cell || len(b.Tensors) == 0 || b.NTokens < 8 || b.NTokens > 16 || b.SystemInfo == "" {
				t.Errorf("%s: baseline %s, %d tensors, %d tokens, system info %q", cell, b.Cell, len(b.Tensors), b.NTokens, b.SystemInfo)
			}
		}
	})

	t.Run("check", func(t *testing.T) {
		log, code := nightlySh(t, bl)
		if code != 0 {
			t.Fatalf("nightly.sh against fresh baselines: exit %d\n%s", code, log)
		}
		for _, cell := range nightlyTinyCells {
			if !strings.Contains(log, "OK          "+cell) {
				t.Errorf("no OK line for %s:\n%s", cell, log)
			}
		}
		md, err := os.ReadFile(filepath.Join(out, "summary.md"))
		if err != nil || !strings.Contains(string(md), "**PASS**: all 2 cells match their baselines") {
			t.Errorf("summary.md (%v):\n%s", err, md)
		}
		if doc := junit(t); len(doc.Suites) != 2 || doc.Failures != 0 || doc.Errors != 0 || doc.Tests < 20 {
			t.Errorf("junit: %d suites, %d tests, %d failures, %d errors", len(doc.Suites), doc.Tests, doc.Failures, doc.Errors)
		}
	})

	t.Run("tampered", func(t *testing.T) {
		// The f64 cell's baseline claims 100× smaller errors (so today's
		// errors look like a regression); the ggml cell's claims a failing
		// verdict (so today's pass is an unrecorded improvement).
		tam := filepath.Join(tmp, "tampered")
		if err := os.MkdirAll(tam, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, cell := range nightlyTinyCells {
			b, err := nightly.LoadBaseline(filepath.Join(bl, cell+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(cell, "-f64-") {
				for i := range b.Tensors {
					if v := b.Tensors[i].NMSE; v != nil {
						*v /= 100
					}
				}
			} else {
				b.Verdict = compare.VerdictFail
			}
			var buf bytes.Buffer
			if err := nightly.WriteBaseline(&buf, b); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tam, cell+".json"), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		log, code := nightlySh(t, tam)
		if code != 1 {
			t.Fatalf("nightly.sh against tampered baselines: exit %d, want 1\n%s", code, log)
		}
		if !strings.Contains(log, "REGRESSED   llama-q8_0-f64-faon") || !strings.Contains(log, "CHANGED     llama-q8_0-ggml-faon") {
			t.Errorf("lines:\n%s", log)
		}
		md, _ := os.ReadFile(filepath.Join(out, "summary.md"))
		for _, want := range []string{"**FAIL**: 2 of 2 cells failed (1 regressed, 1 changed", "### llama-q8_0-f64-faon — regressed", "improvement verdict: verdict fail → pass"} {
			if !strings.Contains(string(md), want) {
				t.Errorf("summary.md lacks %q:\n%s", want, md)
			}
		}
		if doc := junit(t); doc.Failures < 2 {
			t.Errorf("junit: %d failures, want ≥ 2", doc.Failures)
		}
	})

	t.Run("committed", func(t *testing.T) {
		// The committed baselines hold only on a CPU whose llama.cpp kernels
		// are the ones they were recorded with.
		committed := filepath.Join(root, "fixtures", "baselines")
		b, err := nightly.LoadBaseline(filepath.Join(committed, nightlyTinyCells[0]+".json"))
		if err != nil {
			t.Skipf("no committed baseline: %v", err)
		}
		src, err := reference.Open(filepath.Join(cache, "dump-llama-q8_0-faon"))
		if err != nil {
			t.Fatal(err)
		}
		if si := strings.TrimSpace(src.Describe().SystemInfo); si != b.SystemInfo {
			t.Skipf("committed baselines were recorded with llama.cpp system info %q (kernels %s), this machine has %q (kernels %s)", b.SystemInfo, b.Kernels, si, reference.KernelProfile(si))
		}
		log, code := nightlySh(t, committed)
		if code != 0 {
			t.Fatalf("nightly.sh against fixtures/baselines: exit %d\n%s", code, log)
		}
	})
}
