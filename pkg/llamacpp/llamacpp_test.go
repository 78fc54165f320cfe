//go:build llamacpp

package llamacpp

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

func TestSystemInfo(t *testing.T) {
	if s := SystemInfo(); s == "" {
		t.Fatal("empty system info")
	}
	t.Log(SystemInfo())
}

func sharedModel(t *testing.T) string {
	t.Helper()
	p := "../../../shared/llamacpp/S-Q8_0.gguf"
	if _, err := os.Stat(p); err != nil {
		t.Skip("shared model not present")
	}
	return p
}

func TestEvalNodes(t *testing.T) {
	m, err := LoadModel(sharedModel(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	toks, err := m.Tokenize("Hello world, this is a test", true, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{1, 15043, 3186, 29892, 445, 338, 263, 1243}
	if fmt.Sprint(toks) != fmt.Sprint(want) {
		t.Fatalf("tokens %v, want %v", toks, want)
	}
	for _, fa := range []string{"on", "off"} {
		ctx, err := NewContext(m, ContextOptions{NCtx: 64, FlashAttn: fa, TypeK: 1, TypeV: 1})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		var last []float32
		err = ctx.Eval(toks, nil, func(n *Node) error {
			names = append(names, fmt.Sprintf("%s[%s %v]", n.Name, n.Op, n.Ne))
			if n.Name == "result_output" {
				last = make([]float32, len(n.Data)/4)
				for i := range last {
					last[i] = math.Float32frombits(binary.LittleEndian.Uint32(n.Data[4*i:]))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("fa=%s: %d nodes: %s", fa, len(names), strings.Join(names, " "))
		nv := m.NVocab()
		if len(last) != nv*len(toks) {
			t.Fatalf("result_output has %d values, want %d", len(last), nv*len(toks))
		}
		for i := range toks {
			lg := ctx.Logits(i)
			for j := range lg {
				if math.Float32bits(lg[j]) != math.Float32bits(last[i*nv+j]) {
					t.Fatalf("token %d logit %d: llama_get_logits_ith %v, result_output %v", i, j, lg[j], last[i*nv+j])
				}
			}
		}
		ctx.Close()
	}
}
