//go:build llamacpp

package forward

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/graph-*.txt from llama.cpp")

// TestGraphGoldensFromLlamaCpp writes (with -update) or checks the node
// lists of llama.cpp's graphs for the default fixtures, which the pure-Go
// TestGraphMatchesGolden compares the forward graph with.
func TestGraphGoldensFromLlamaCpp(t *testing.T) {
	for _, arch := range fixture.Archs {
		path := fixturePath(t, arch, "f32", 0)
		for _, fa := range []bool{true, false} {
			ref := llamaNodes(t, refConfig{Path: path, Tokens: goldenTokens, FA: fa, KVType: quant.F16})
			var sb strings.Builder
			fmt.Fprintf(&sb, "# llama.cpp %s graph: fixture.Default(%q), %d tokens, flash attention %v, F16 KV cache\n", arch, arch, len(goldenTokens), fa)
			for _, r := range ref {
				if r.Name == "result_output" { // the fixture's vocabulary size may change
					fmt.Fprintf(&sb, "%s|%s|n_vocab,%d,%d,%d\n", r.Name, r.Op, r.Ne[1], r.Ne[2], r.Ne[3])
					continue
				}
				fmt.Fprintf(&sb, "%s|%s|%d,%d,%d,%d\n", r.Name, r.Op, r.Ne[0], r.Ne[1], r.Ne[2], r.Ne[3])
			}
			file := filepath.Join("testdata", goldenName(arch, fa))
			if *updateGolden {
				if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if string(want) != sb.String() {
				t.Errorf("%s is out of date with llama.cpp (run with -update)", file)
			}
		}
	}
}
