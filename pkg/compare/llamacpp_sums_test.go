//go:build llamacpp

package compare

import (
	"bufio"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

var logSum = regexp.MustCompile(`^\s*sum\s*=\s*(\S+)\s*$`)

// readLogSums reads node descriptions and printed sums from an
// eval-callback log: each node becomes a partial tensor with its sum only.
func readLogSums(t *testing.T, path string) []*tensor.Tensor {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("shared fixture not available: %v", err)
	}
	defer f.Close()
	var out []*tensor.Tensor
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := logHeader.FindStringSubmatch(line); m != nil {
			var ne []int64
			for _, d := range strings.Split(m[4], ",") {
				v, _ := strconv.ParseInt(strings.TrimSpace(d), 10, 64)
				ne = append(ne, v)
			}
			out = append(out, &tensor.Tensor{Name: m[1], Op: m[3], Ne: tensor.Trim(ne)})
			continue
		}
		if m := logSum.FindStringSubmatch(line); m != nil && len(out) > 0 {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				t.Fatalf("%s: sum %q", path, m[1])
			}
			q := 1e-6
			if i := strings.IndexByte(m[1], '.'); i >= 0 {
				q = math.Pow(10, -float64(len(m[1])-i-1))
			}
			out[len(out)-1].Partial = &tensor.Partial{Sum: v, HasSum: true, SumQuantum: q}
		}
	}
	return out
}

// TestLlamaCppLogSums checks the sum check on real data: the sums printed by
// a 2026 llama.cpp (AVX-512) in both log formats against the in-process
// llama.cpp's tensors, summed the way the eval callback sums (float32).
func TestLlamaCppLogSums(t *testing.T) {
	sd := sharedDir(t)
	m, err := llamacpp.LoadModel(filepath.Join(sd, "llamacpp", "S-Q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, err := llamacpp.NewContext(m, llamacpp.ContextOptions{NCtx: 64, FlashAttn: "on", TypeK: 1, TypeV: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	var ours []*tensor.Tensor
	err = ctx.Eval([]int32{1, 15043, 3186, 29892, 445, 338, 263, 1243}, nil, func(n *llamacpp.Node) error {
		tt := &tensor.Tensor{Name: n.Name, Op: n.Op, Ne: tensor.Trim(n.Ne[:])}
		contiguous := n.Nb[0] == 4
		for i := 1; i < 4; i++ {
			contiguous = contiguous && n.Nb[i] == n.Nb[i-1]*uint64(n.Ne[i-1])
		}
		if n.Type == 0 && contiguous && int64(len(n.Data)) == 4*tensor.Numel(tt.Ne) {
			tt.Data = make([]float32, tensor.Numel(tt.Ne))
			for i := range tt.Data {
				tt.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(n.Data[4*i:]))
			}
		}
		ours = append(ours, tt)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, logName := range []string{"evalcb-S-Q8_0.log", "evalcb-old-S-Q8_0.log"} {
		ref := readLogSums(t, filepath.Join(sd, "llamacpp", logName))
		rep, err := Compare(NewTensorList(ref), NewTensorList(ours), Options{Policy: MustPolicy(ModeBitExact)})
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, r := range rep.Tensors {
			if r.Metrics == nil || r.Metrics.Sum == nil {
				continue
			}
			checked++
			s := r.Metrics.Sum
			// What a float64 accumulator would have said.
			var f64 float64
			if o, err := NewTensorList(ours).Tensor(r.Other.Key); err == nil && o.Data != nil && r.Transform == SameShape {
				for _, v := range o.Data {
					f64 += float64(v)
				}
			}
			t.Logf("%-26s %-15s %-9s %-10s printed %-12s f32 %-14s f64 %-14s limit %s", r.Name, r.Op, r.Status, r.Transform,
				FormatFloat(float64(s.Ref), -1), FormatFloat(float64(s.Other), 9), FormatFloat(f64, 9), FormatFloat(float64(s.Limit), 3))
			if r.Status != Pass {
				t.Errorf("%s: %s: %s", logName, r.Name, strings.Join(r.Reasons, "; "))
			}
		}
		t.Logf("%s: %d sums checked, %+v", logName, checked, rep.Summary)
		if checked < 40 {
			t.Errorf("%s: only %d sums checked", logName, checked)
		}
	}
}
