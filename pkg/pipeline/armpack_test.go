package pipeline

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// armCell is one line of fixtures/arm64/cells.txt.
type armCell struct {
	name    string
	fixture []string // layerdiff fixture flags
}

func readARMCells(t *testing.T, path string) []armCell {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cells []armCell
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "|")
		if len(parts) != 3 {
			t.Fatalf("%s: %q: want NAME | FIXTURE FLAGS | DUMP FLAGS", path, line)
		}
		cells = append(cells, armCell{name: strings.TrimSpace(parts[0]), fixture: strings.Fields(parts[1])})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cells
}

// fixtureConfig parses `layerdiff fixture` flags into a fixture.Config
// (the command's defaults otherwise) and returns the --type.
func fixtureConfig(args []string) (fixture.Config, string, error) {
	c := fixture.Default("llama")
	typ := "q8_0"
	for i := 0; i < len(args); i++ {
		flag := strings.TrimLeft(args[i], "-")
		if flag == "tied" {
			c.Tied = true
			continue
		}
		if i+1 >= len(args) {
			return c, "", fmt.Errorf("flag %s without a value", args[i])
		}
		v := args[i+1]
		i++
		n, nerr := strconv.Atoi(v)
		var err error
		switch flag {
		case "arch":
			c.Arch = v
		case "type":
			typ = v
		case "seed":
			var s uint64
			s, err = strconv.ParseUint(v, 10, 64)
			c.Seed = s
		case "embd":
			c.Embd, err = n, nerr
		case "layers":
			c.Layers, err = n, nerr
		case "heads":
			c.Heads, err = n, nerr
		case "kv-heads":
			c.KVHeads, err = n, nerr
		case "head-dim":
			c.HeadDim, err = n, nerr
		case "ff":
			c.FF, err = n, nerr
		case "vocab-size":
			c.VocabSize, err = n, nerr
		case "ctx":
			c.Ctx, err = n, nerr
		default:
			return c, "", fmt.Errorf("flag %s is not understood here", args[i-1])
		}
		if err != nil {
			return c, "", fmt.Errorf("flag %s %s: %v", flag, v, err)
		}
	}
	return c, typ, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// armQuantize, set by the llamacpp build of the tests, quantizes an F32
// fixture to a `layerdiff fixture --type` with the in-build llama.cpp.
var armQuantize func(f32, out, typ string) error

// armPackModel regenerates a cell's model into dir: F32 models by the
// pure-Go generator, the others (which llama.cpp's quantizer writes) by
// the in-build llama.cpp's quantizer (build tag llamacpp) or else by
// running `layerdiff fixture` from $LAYERDIFF_BIN or ../../bin/layerdiff
// (make build). skip says why a model cannot be made here.
func armPackModel(c armCell, dir string) (path, skip string, err error) {
	cfg, typ, err := fixtureConfig(c.fixture)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, c.name+".gguf")
	if typ == "f32" {
		return path, "", fixture.Generate(cfg, path)
	}
	if armQuantize != nil { // the llamacpp build of this test
		f32 := path + ".f32"
		defer os.Remove(f32)
		if err := fixture.Generate(cfg, f32); err != nil {
			return "", "", err
		}
		return path, "", armQuantize(f32, path, typ)
	}
	bin := os.Getenv("LAYERDIFF_BIN")
	if bin == "" {
		bin, _ = filepath.Abs(filepath.Join("..", "..", "bin", "layerdiff"))
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Sprintf("%s: a %s model needs llama.cpp's quantizer: `make build` (or LAYERDIFF_BIN) provides bin/layerdiff", c.name, typ), nil
	}
	out, err := exec.Command(bin, append([]string{"fixture"}, append(c.fixture, "--out", path, "--force")...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Sprintf("%s: %s fixture: %v: %s", c.name, bin, err, strings.TrimSpace(string(out))), nil
	}
	return path, "", nil
}

// TestARM64PackBitIdentical runs layerdiff on every dump of fixtures/arm64
// (llama.cpp built for aarch64 with -march=armv8.2-a+dotprod+fp16 and run
// under qemu-user; scripts/armpack.sh): each cell's model is regenerated
// into a temporary directory and checked against the dump's sha256, the
// kernel profile is chosen from the dump's system_info (arm64-neon), and
// every stored tensor must be bit-identical (mode bitexact).
func TestARM64PackBitIdentical(t *testing.T) {
	root := filepath.Join("..", "..", "fixtures", "arm64")
	cells := readARMCells(t, filepath.Join(root, "cells.txt"))
	if len(cells) == 0 {
		t.Fatal("no cells")
	}
	dir := t.TempDir()
	same, ran, tensors, identical, crossPass := 0, 0, 0, 0, 0
	for _, c := range cells {
		t.Run(c.name, func(t *testing.T) {
			d, err := reference.OpenDump(filepath.Join(root, "dumps", c.name))
			if err != nil {
				t.Fatal(err)
			}
			info := d.Describe()
			kc, err := ChooseKernels("", reference.KernelProfile(info.SystemInfo))
			if err != nil {
				t.Fatal(err)
			}
			if kc.Reference != reference.ProfileARM64NEON {
				t.Fatalf("system_info %q gives kernel profile %q, want %q", info.SystemInfo, kc.Reference, reference.ProfileARM64NEON)
			}
			if !kc.Exact {
				t.Skipf("%s", kc.Note)
			}
			path, skip, err := armPackModel(c, dir)
			if err != nil {
				t.Fatal(err)
			}
			if skip != "" {
				t.Skip(skip)
			}
			defer os.Remove(path)
			sum, err := fileSHA256(path)
			if err != nil {
				t.Fatal(err)
			}
			if sum != info.ModelSHA256 {
				t.Fatalf("regenerated model %s has sha256 %s, the dump's is %s", path, sum, info.ModelSHA256)
			}
			ran++
			// (the -kvf32 cells: Run takes the KV cache type from the dump)
			r, err := Run(d, path, RunOptions{Threads: 2, CompareOptions: CompareOptions{Policy: compare.MustPolicy(compare.ModeBitExact)}})
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Meta.Other.Kernels; got != kc.Reference {
				t.Errorf("emulated kernels %q, want the reference's %q", got, kc.Reference)
			}
			ident, n := 0, 0
			for _, row := range r.Tensors {
				if m := row.Metrics; m != nil {
					n++
					if m.BitIdentical == m.N {
						ident++
					}
				}
			}
			tensors += n
			identical += ident
			if r.Verdict != compare.VerdictPass || ident != n || n == 0 {
				msg := fmt.Sprintf("verdict %s, %d of %d tensors bit-identical", r.Verdict, ident, n)
				if fd := r.FirstDivergence; fd != nil {
					row := r.Tensors[fd.Row]
					msg += fmt.Sprintf("; first divergence %s (%s, layer %d, token %d)", fd.Key, fd.Op, fd.Layer, fd.Token)
					if m := row.Metrics; m != nil {
						msg += fmt.Sprintf(": nmse %.3g, %d of %d elements bit-identical", float64(m.NMSE), m.BitIdentical, m.N)
					}
				}
				t.Error(msg)
				return
			}
			same++
			// Under x86 kernels the same dump is another family's: the
			// cross-kernel mode must pass it (docs/tolerance.md).
			r, err = Run(d, path, RunOptions{Threads: 2, Kernels: forward.KernelsAVX2})
			if err != nil {
				t.Fatal(err)
			}
			if r.Meta.Mode != ModeCrossKernel || r.Verdict != compare.VerdictPass {
				t.Errorf("under %s: mode %s, verdict %s (first divergence %+v)", forward.KernelsAVX2, r.Meta.Mode, r.Verdict, r.FirstDivergence)
				return
			}
			crossPass++
		})
	}
	t.Logf("fixtures/arm64: %d of %d cells run, %d bit-identical (%d cells in the pack); %d of %d compared tensors bit-identical; %d pass in the cross-kernel mode under x86-avx2", ran, len(cells), same, len(cells), identical, tensors, crossPass)
}
