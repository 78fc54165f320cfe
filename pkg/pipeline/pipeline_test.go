package pipeline

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// TestRefSideRecyclesBuffers checks that a reference side loads into the
// memory of released tensors, never into a tensor still held, and that
// every value read through the pool is the file's.
func TestRefSideRecyclesBuffers(t *testing.T) {
	dir := t.TempDir()
	vals := func(n int, seed float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = seed + float32(i)/8
		}
		return v
	}
	want := map[string][]float32{}
	write := func(name string, n int, seed float32) {
		want[name] = vals(n, seed)
		if err := reference.WriteNPYFloat32(filepath.Join(dir, name+".npy"), []int64{int64(n)}, want[name]); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 1000, 1)
	write("b", 500, 2)
	write("d", 2000, 4)
	write("e", 800, 5)
	// f16 goes through the pool too; f64 is converted into new memory.
	half := vals(300, 6)
	bits := make([]uint16, len(half))
	for i, x := range half {
		bits[i] = quant.F32ToF16(x)
	}
	if err := reference.WriteNPYFloat16(filepath.Join(dir, "f.npy"), []int64{300}, bits); err != nil {
		t.Fatal(err)
	}
	want["f"] = half // exact in f16: multiples of 1/8 below 2048
	src, err := reference.OpenNPYDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := SideOf(src).(*refSide)
	load := func(key string) []float32 {
		t.Helper()
		x, err := s.Tensor(key)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x.Data, want[key]) {
			t.Fatalf("%s read through the pool differs from the file", key)
		}
		return x.Data
	}
	a := load("a")
	b := load("b")
	s.Release("a")
	e := load("e") // 800 values fit a's 1000
	if &e[0] != &a[0] {
		t.Error("e was not loaded into a's released memory")
	}
	if !slices.Equal(b, want["b"]) {
		t.Error("b changed while held")
	}
	d := load("d") // 2000 values fit nothing free: new memory
	if &d[0] == &e[0] || &d[0] == &b[0] {
		t.Error("d shares memory with a tensor still held")
	}
	s.Release("b")
	f := load("f")
	if &f[0] != &b[0] {
		t.Error("the f16 tensor was not loaded into b's released memory")
	}
	for key, x := range map[string][]float32{"d": d, "e": e, "f": f} {
		if !slices.Equal(x, want[key]) {
			t.Errorf("%s changed while held", key)
		}
	}
	// Releasing twice, or a key never loaded, is harmless.
	s.Release("e")
	s.Release("e")
	s.Release("zzz")
	if n := len(s.free); n != 1 {
		t.Errorf("%d free buffers, want 1 (e's)", n)
	}
	// The pool stays bounded.
	for i := 0; i < 3*maxFree; i++ {
		s.put(make([]float32, i+1))
	}
	if len(s.free) != maxFree || cap(s.free[0]) < 2*maxFree {
		t.Errorf("pool of %d buffers after many puts (smallest kept %d), want the %d largest", len(s.free), cap(s.free[0]), maxFree)
	}

	// Two directories compared end to end through the pool.
	other := t.TempDir()
	for key, v := range want {
		c := slices.Clone(v)
		if key == "d" {
			c[7] += 1
		}
		if key == "f" {
			continue
		}
		if err := reference.WriteNPYFloat32(filepath.Join(other, key+".npy"), []int64{int64(len(c))}, c); err != nil {
			t.Fatal(err)
		}
	}
	src2, err := reference.OpenNPYDir(other)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Compare(src, src2, CompareOptions{Policy: compare.MustPolicy(compare.ModeBitExact)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Fail != 1 || rep.FirstDivergence == nil || rep.FirstDivergence.Key != "d" {
		t.Fatalf("summary %+v, first divergence %+v; want d failing alone", rep.Summary, rep.FirstDivergence)
	}
	for _, r := range rep.Tensors {
		if r.Key == "d" && (r.Metrics == nil || r.Metrics.MaxAbs != 1 || r.Metrics.BitIdentical != 1999) {
			t.Errorf("d measured %+v", r.Metrics)
		}
	}
}

// bufRef is a memRef that loads into the caller's buffer, as a dump
// directory does.
type bufRef struct{ memRef }

func (s *bufRef) LoadInto(key string, buf []float32) (*tensor.Tensor, error) {
	for _, t := range s.list {
		if t.Key == key {
			c := *t
			if cap(buf) >= len(t.Data) {
				c.Data = buf[:len(t.Data)]
			} else {
				c.Data = make([]float32, len(t.Data))
			}
			copy(c.Data, t.Data)
			return &c, nil
		}
	}
	return nil, reference.ErrNotFound
}

// TestCompareSharedCounterpart compares a reference holding, for each
// node, a VIEW of it that the other side lacks: the view is compared with
// its source's counterpart (view-of-source), so two rows read one tensor of
// the other side, concurrently. Its memory must not be recycled while the
// second row still measures it: the metrics with two workers equal those
// with one.
func TestCompareSharedCounterpart(t *testing.T) {
	const n = 1 << 14
	var a, b []*tensor.Tensor
	for l := 0; l < 40; l++ {
		d := make([]float32, n)
		d2 := make([]float32, n)
		for i := range d {
			d[i] = float32(l*7+1) + float32(i%1000)/1024
			d2[i] = d[i] * (1 + float32(i%3)*1e-7)
		}
		name := fmt.Sprintf("attn_norm-%d", l)
		a = append(a, &tensor.Tensor{Key: name, Name: name, Op: "MUL", Ne: []int64{n}, Data: d},
			&tensor.Tensor{Key: name + " (view)", Name: name + " (view)", Op: "VIEW", Ne: []int64{n}, Data: d})
		b = append(b, &tensor.Tensor{Key: name, Name: name, Op: "MUL", Ne: []int64{n}, Data: d2})
	}
	info := reference.Info{Kind: reference.KindDump, Path: "mem"}
	cmp := func(workers int) *compare.Report {
		rep, err := compare.Compare(SideOf(&bufRef{memRef{info: info, list: a}}), SideOf(&bufRef{memRef{info: info, list: b}}),
			compare.Options{Policy: compare.MustPolicy(compare.ModeBitExact), Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	want := cmp(1)
	shared := 0
	for _, r := range want.Tensors {
		if r.Other != nil && r.Other.Match == "view-of-source" {
			shared++
		}
	}
	if shared != 40 {
		t.Fatalf("%d rows compared with their source's counterpart, want 40", shared)
	}
	for it := 0; it < 10; it++ {
		got := cmp(2)
		for i, r := range got.Tensors {
			w := want.Tensors[i]
			if r.Metrics == nil || w.Metrics == nil || r.Metrics.NMSE != w.Metrics.NMSE || r.Metrics.MaxAbs != w.Metrics.MaxAbs {
				t.Fatalf("run %d, row %s: metrics %+v with two workers, %+v with one", it, r.Name, r.Metrics, w.Metrics)
			}
		}
	}
}
