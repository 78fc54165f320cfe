//go:build llamacpp

package forward

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// refNode is one node of a real llama.cpp evaluation.
type refNode struct {
	Name, Op string
	Type     int
	Ne       [4]int64
	Data     []float32 // ggml order, nil when the node had no data
}

// refConfig names one llama.cpp evaluation.
type refConfig struct {
	Path   string
	Tokens []int32
	FA     bool
	KVType quant.Type
	NCtx   int
	NBatch int // tokens per llama_decode call; 0: all at once
}

var (
	refMu    sync.Mutex
	refCache = map[string][]refNode{}
)

// llamaNodes runs llama.cpp on cfg and returns every node of the graph with
// its data converted to float32 in ggml order.
func llamaNodes(t testing.TB, cfg refConfig) []refNode {
	t.Helper()
	key := fmt.Sprint(cfg.Path, cfg.Tokens, cfg.FA, cfg.KVType, cfg.NCtx, cfg.NBatch)
	refMu.Lock()
	defer refMu.Unlock()
	if r, ok := refCache[key]; ok {
		return r
	}
	m, err := llamacpp.LoadModel(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fa := "off"
	if cfg.FA {
		fa = "on"
	}
	nctx := cfg.NCtx
	if nctx == 0 {
		nctx = (len(cfg.Tokens) + 255) / 256 * 256
	}
	nbatch := nctx
	if cfg.NBatch > 0 {
		nbatch = cfg.NBatch
	}
	ctx, err := llamacpp.NewContext(m, llamacpp.ContextOptions{NCtx: nctx, NBatch: nbatch, Threads: 2, FlashAttn: fa, TypeK: int(cfg.KVType), TypeV: int(cfg.KVType)})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	var out []refNode
	err = ctx.Eval(cfg.Tokens, nil, func(n *llamacpp.Node) error {
		r := refNode{Name: n.Name, Op: n.Op, Type: n.Type, Ne: n.Ne}
		if n.Data != nil {
			r.Data = nodeF32(n)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	refCache[key] = out
	return out
}

// nodeF32 reads a callback node's bytes with its strides.
func nodeF32(n *llamacpp.Node) []float32 {
	cnt := n.Ne[0] * n.Ne[1] * n.Ne[2] * n.Ne[3]
	out := make([]float32, 0, cnt)
	for i3 := int64(0); i3 < n.Ne[3]; i3++ {
		for i2 := int64(0); i2 < n.Ne[2]; i2++ {
			for i1 := int64(0); i1 < n.Ne[1]; i1++ {
				for i0 := int64(0); i0 < n.Ne[0]; i0++ {
					o := uint64(i0)*n.Nb[0] + uint64(i1)*n.Nb[1] + uint64(i2)*n.Nb[2] + uint64(i3)*n.Nb[3]
					var v float32
					switch n.Type {
					case 0:
						v = math.Float32frombits(binary.LittleEndian.Uint32(n.Data[o:]))
					case 1:
						v = quant.F16ToF32(binary.LittleEndian.Uint16(n.Data[o:]))
					case 26:
						v = float32(int32(binary.LittleEndian.Uint32(n.Data[o:])))
					default:
						return nil
					}
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// sharedDir finds /work/shared (or a sibling "shared" of a parent of the
// test directory); "" when absent.
func sharedDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		c := filepath.Join(dir, "shared")
		if st, err := os.Stat(filepath.Join(c, "llamacpp")); err == nil && st.IsDir() {
			return c
		}
		p := filepath.Dir(dir)
		if p == dir {
			return ""
		}
		dir = p
	}
}

func sharedModel(t testing.TB, name string) string {
	d := sharedDir()
	if d == "" {
		t.Skip("shared/ not found")
	}
	p := filepath.Join(d, "llamacpp", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s: %v", p, err)
	}
	return p
}

func sharedDirOrSkip(t testing.TB) string {
	d := sharedDir()
	if d == "" {
		t.Skip("shared/ not found")
	}
	return d
}

// inBuildKernels is the kernel profile of the in-build llama.cpp, read
// from its own system_info: the differential tests emulate the kernels the
// machine running them compiled.
var inBuildKernels = sync.OnceValue(func() string { return reference.KernelProfile(llamacpp.SystemInfo()) })

// llamaOptions are DefaultOptions with the in-build llama.cpp's kernel
// profile; the test is skipped where that profile is not emulated.
func llamaOptions(t testing.TB) Options {
	t.Helper()
	o := DefaultOptions()
	o.Kernels = inBuildKernels()
	if !Emulates(o.Kernels) {
		t.Skipf("the in-build llama.cpp's kernels (%s: %s) are not emulated", o.Kernels, llamacpp.SystemInfo())
	}
	return o
}
