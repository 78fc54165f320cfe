//go:build llamacpp

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// engineDocFeatures are the needs= features of docs/engines.md blocks
// that this build has.
var engineDocFeatures = map[string]bool{"compare-names": true}

// TestEnginesDoc runs the ```sh blocks of docs/engines.md, in order, in one
// scratch directory, with `layerdiff` (this test binary) and a python3 that
// imports numpy on PATH and LAYERDIFF set to the repository. Each block must
// exit 0; blocks needing a feature this build lacks are skipped.
func TestEnginesDoc(t *testing.T) {
	blocks, err := shBlocks("../../docs/engines.md")
	if err != nil {
		t.Fatal(err)
	}
	py, err := exec.LookPath(numpyPython(t))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	scripts := map[string]string{
		"layerdiff": "#!/bin/sh\nexec \"" + exe + "\" -test.run='^TestLayerdiffProcess$' -- \"$@\"\n",
		"python3":   "#!/bin/sh\nexec \"" + py + "\" \"$@\"\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"LAYERDIFF="+repo, cliProcessEnv+"=1", "NO_COLOR=1", "PYTHONDONTWRITEBYTECODE=1")
	ran := 0
	for _, b := range blocks {
		if !b.runnable(engineDocFeatures) {
			t.Logf("docs/engines.md:%d: skipped (needs %s)", b.Line, strings.Join(b.Needs, ","))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", b.Text)
		cmd.Dir, cmd.Env = dir, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("docs/engines.md:%d: %v\n%s\n%s", b.Line, err, b.Text, out.String())
		}
		if strings.Contains(b.Text, "--bug rope-halves") && (!strings.Contains(out.String(), "first divergence at Qcur-0 (ROPE, layer 0, token 1)") || !strings.Contains(out.String(), "[isolation]") || !strings.Contains(out.String(), "rotates halves")) {
			t.Errorf("docs/engines.md:%d: the page says the first divergence is Qcur-0's ROPE at token 1; got\n%s", b.Line, out.String())
		}
		ran++
		t.Logf("ok: docs/engines.md:%d", b.Line)
	}
	if ran < 4 {
		t.Errorf("ran %d blocks of docs/engines.md", ran)
	}
}
