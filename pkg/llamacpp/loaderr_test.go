//go:build llamacpp

package llamacpp_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
)

// TestLoadModelSaysWhy checks that a model llama.cpp refuses comes back
// with llama.cpp's own reason, not only "could not load", and that a
// context can then still be made for a good model (the error buffer is
// per call).
func TestLoadModelSaysWhy(t *testing.T) {
	cfg := fixture.Config{Arch: "llama", Seed: 1, Embd: 64, Layers: 1, Heads: 2, KVHeads: 1, FF: 128, VocabSize: 320, Ctx: 64}
	kvs, ts, err := fixture.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.gguf")
	if err := gguf.WriteFile(good, kvs, ts, 32); err != nil {
		t.Fatal(err)
	}
	for i := range kvs {
		if kvs[i].Key == "general.architecture" {
			kvs[i] = gguf.NewKV("general.architecture", "nosucharch")
		}
	}
	bad := filepath.Join(dir, "bad.gguf")
	if err := gguf.WriteFile(bad, kvs, ts, 32); err != nil {
		t.Fatal(err)
	}
	_, err = llamacpp.LoadModel(bad)
	if err == nil {
		t.Fatal("llama.cpp loaded a model of an unknown architecture")
	}
	t.Log(err)
	if msg := err.Error(); !strings.Contains(msg, bad) || !strings.Contains(msg, "nosucharch") {
		t.Errorf("error %q does not name the file and llama.cpp's reason", msg)
	}
	m, err := llamacpp.LoadModel(good)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, err := llamacpp.NewContext(m, llamacpp.ContextOptions{NCtx: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	n := 0
	if err := ctx.Eval([]int32{1, 2, 3}, nil, func(*llamacpp.Node) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("the eval callback saw no node")
	}
}
