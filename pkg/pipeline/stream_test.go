package pipeline

import (
	"errors"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// memRef is a reference held in memory: the tensors of a forward pass, as
// a dump of them would give.
type memRef struct {
	info reference.Info
	list []*tensor.Tensor
}

func (s *memRef) Describe() reference.Info { return s.info }

func (s *memRef) Nodes() []reference.NodeInfo {
	out := make([]reference.NodeInfo, len(s.list))
	for i, t := range s.list {
		out[i] = reference.NodeInfo{Key: t.Key, Name: t.Name, Op: t.Op, Type: "f32", Ne: t.Ne, Data: reference.FullData}
	}
	return out
}

func (s *memRef) Load(key string) (*tensor.Tensor, error) {
	for _, t := range s.list {
		if t.Key == key {
			c := *t
			c.Data = slices.Clone(t.Data)
			return &c, nil
		}
	}
	return nil, reference.ErrNotFound
}

// loadForward opens the model at path for the forward pass; the file stays
// open until the test ends.
func loadForward(t *testing.T, path string) *forward.Model {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := forward.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ownForward runs layerdiff's forward pass on the model at path and returns
// every node's tensor, keyed as a dump keys them.
func ownForward(t *testing.T, path string, toks []int32) []*tensor.Tensor {
	t.Helper()
	return ownForwardOpts(t, path, toks, forward.DefaultOptions())
}

// ownForwardOpts is ownForward with options.
func ownForwardOpts(t *testing.T, path string, toks []int32, opts forward.Options) []*tensor.Tensor {
	t.Helper()
	m := loadForward(t, path)
	var keys reference.KeyMaker
	var list []*tensor.Tensor
	_, err := m.Run(toks, opts, forward.RecorderFunc(func(n *forward.Node, x *tensor.Tensor) error {
		x.Key = keys.Next(n.Name)
		x.Data = slices.Clone(x.Data)
		list = append(list, x)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestRunStreams runs layerdiff against a reference made of its own
// activations: everything passes bit for bit; with one activation changed,
// the first divergence, blame and hints are those of the changed node, and
// the hints read layerdiff's released tensor by recomputing it.
func TestRunStreams(t *testing.T) {
	path, _, _ := checkFixture(t)
	toks := []int32{1, 5, 9, 17}
	list := ownForward(t, path, toks)
	info := reference.Info{Kind: reference.KindDump, Path: "mem", Tokens: toks, FlashAttn: "on"}

	for _, threads := range []int{1, 3} {
		rep, err := Run(&memRef{info: info, list: list}, path, RunOptions{Threads: threads, CompareOptions: CompareOptions{Policy: compare.MustPolicy(compare.ModeBitExact)}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Verdict != compare.VerdictPass || rep.Summary.Pass != len(list) {
			t.Fatalf("threads %d: verdict %s, %d of %d pass", threads, rep.Verdict, rep.Summary.Pass, len(list))
		}
	}

	// Scale one activation: it is the first divergence and, fed the
	// reference's inputs, still differs, so isolation blames it.
	bad := slices.Clone(list)
	i := slices.IndexFunc(bad, func(x *tensor.Tensor) bool { return x.Name == "ffn_out-0" })
	if i < 0 {
		t.Fatal("no ffn_out-0")
	}
	c := *bad[i]
	c.Data = slices.Clone(c.Data)
	for k := range c.Data {
		c.Data[k] *= 2
	}
	bad[i] = &c
	rep, err := Run(&memRef{info: info, list: bad}, path, RunOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != compare.VerdictFail || rep.FirstDivergence == nil || rep.FirstDivergence.Name != "ffn_out-0" {
		t.Fatalf("verdict %s, first divergence %+v; want FAIL at ffn_out-0", rep.Verdict, rep.FirstDivergence)
	}
	if rep.Blame == nil || rep.Blame.Name != "ffn_out-0" || rep.Blame.By != "isolation" {
		t.Fatalf("blame %+v, want ffn_out-0 by isolation", rep.Blame)
	}
	if !slices.ContainsFunc(rep.Blame.Hints, func(h compare.Hint) bool { return h.Kind == "scale" && h.Value == 0.5 }) {
		t.Errorf("no scale-by-0.5 hint for an activation doubled: %+v", rep.Blame.Hints)
	}

	// A blamer asking for tensors Compare has released (every passing
	// row's) gets them recomputed, bit for bit. (Not in the cross-kernel
	// mode, which a reference without system_info gets by default: its
	// rows are each op from the reference's inputs, not the run's own.)
	var asked int
	probe := compare.BlamerFunc(func(d *compare.Divergence, env *compare.BlameEnv) (*compare.Blame, error) {
		for _, row := range []int{0, d.Row - 1, d.Row} {
			got, err := env.Counterpart(row)
			if err != nil {
				return nil, err
			}
			want := list[row]
			if got.Key != want.Key || !slices.EqualFunc(got.Data, want.Data, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
				t.Errorf("row %d: blamer got %s, not the streamed %s", row, got.Key, want.Key)
			}
			asked++
		}
		return compare.FirstFail.Blame(d, env)
	})
	rep, err = Run(&memRef{info: info, list: bad}, path, RunOptions{Threads: 2, CrossKernel: "off", CompareOptions: CompareOptions{Blamer: probe}})
	if err != nil {
		t.Fatal(err)
	}
	if asked != 3 || rep.Blame == nil || rep.Blame.By != "first-fail" {
		t.Errorf("probe blamer asked %d tensors, blame %+v", asked, rep.Blame)
	}
}

// TestStreamSide drives a streamSide by hand: Tensor waits for the run,
// a released tensor is recomputed bit for bit, a run that fails or is
// halted wakes every waiter with its error.
func TestStreamSide(t *testing.T) {
	path, _, _ := checkFixture(t)
	m := loadForward(t, path)
	toks := []int32{1, 5, 9}
	opts := forward.DefaultOptions()
	opts.Threads = 2
	nodes, err := m.Nodes(len(toks), opts)
	if err != nil {
		t.Fatal(err)
	}
	filter := regexp.MustCompile(`^(ffn_out|l_out|attn_norm)-|^result_output$`)
	s := newStreamSide(nodes, filter)
	s.regen = func(key string) (*tensor.Tensor, error) { return recomputeOne(m, toks, opts, filter, key) }
	if len(s.Nodes()) != 7 {
		t.Fatalf("%d nodes kept by the filter, want 7: %v", len(s.Nodes()), s.Nodes())
	}
	done := make(chan error)
	go func() {
		_, err := m.Run(toks, opts, s)
		s.finish(err)
		done <- err
	}()
	kept := map[string][]float32{}
	for _, n := range s.Nodes() {
		x, err := s.Tensor(n.Key)
		if err != nil {
			t.Fatal(err)
		}
		if x.Key != n.Key || x.Name != n.Name || !slices.Equal(x.Ne, n.Ne) {
			t.Fatalf("waited for %+v, got %s %s %v", n, x.Key, x.Name, x.Ne)
		}
		kept[n.Key] = slices.Clone(x.Data)
		s.Release(n.Key)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(s.have) != 0 {
		t.Errorf("%d tensors still held after every one was released", len(s.have))
	}
	for _, key := range []string{"l_out-0", "result_output"} {
		x, err := s.Tensor(key)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(x.Data, kept[key], func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
			t.Errorf("%s recomputed differs from the streamed value", key)
		}
	}
	if _, err := s.Tensor("no-such-node"); err == nil || !strings.Contains(err.Error(), "did not produce") {
		t.Errorf("unknown key after the run: %v", err)
	}

	// A node released before the run produces it is not even recorded, and
	// asked for afterwards, it is recomputed.
	s4 := newStreamSide(nodes, filter)
	s4.regen = s.regen
	s4.Release("l_out-0")
	var offered []string
	rec := &spyRecorder{s: s4, seen: &offered}
	if _, err := m.Run(toks, opts, rec); err != nil {
		t.Fatal(err)
	}
	s4.finish(nil)
	if slices.Contains(offered, "l_out-0") || !slices.Contains(offered, "l_out-1") {
		t.Errorf("recorded %v: want l_out-1 and not the released l_out-0", offered)
	}
	if x, err := s4.Tensor("l_out-0"); err != nil || !slices.EqualFunc(x.Data, kept["l_out-0"], func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
		t.Errorf("l_out-0 released before the run: %v", err)
	}

	// A run that fails wakes a waiter with the run's error.
	s2 := newStreamSide(nodes, nil)
	got := make(chan error)
	go func() {
		_, err := s2.Tensor("result_output")
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	boom := errors.New("boom")
	s2.finish(boom)
	if err := <-got; !errors.Is(err, boom) {
		t.Errorf("waiter got %v, want the run's error", err)
	}

	// A halted side stops the run at its next node.
	s3 := newStreamSide(nodes, nil)
	s3.halt()
	if _, err := m.Run(toks, opts, s3); !errors.Is(err, errStopped) {
		t.Errorf("halted run returned %v, want errStopped", err)
	}
}

// spyRecorder passes a run to a streamSide and notes the keys it records.
type spyRecorder struct {
	s    *streamSide
	seen *[]string
}

func (r *spyRecorder) Want(n *forward.Node) bool { return r.s.Want(n) }

func (r *spyRecorder) Record(n *forward.Node, t *tensor.Tensor) error {
	if err := r.s.Record(n, t); err != nil {
		return err
	}
	*r.seen = append(*r.seen, t.Key)
	return nil
}

// TestRunMicroBatches runs against a reference whose prompt was split into
// micro-batches (the graph starts once per batch): layerdiff's pass splits
// the same way and every tensor passes bit for bit; a reference that
// decoded more than the prompt is refused with a clear error; and compare
// warns when two sides were batched differently.
func TestRunMicroBatches(t *testing.T) {
	path, _, _ := checkFixture(t)
	toks := []int32{1, 5, 9, 17, 23}
	opts := forward.DefaultOptions()
	opts.UBatches = []int{2, 2, 1}
	list := ownForwardOpts(t, path, toks, opts)
	info := reference.Info{Kind: reference.KindDump, Path: "mem", Tokens: toks, FlashAttn: "on"}
	rep, err := Run(&memRef{info: info, list: list}, path, RunOptions{Threads: 2, CompareOptions: CompareOptions{Policy: compare.MustPolicy(compare.ModeBitExact)}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != compare.VerdictPass || rep.Summary.Pass != len(list) {
		t.Fatalf("verdict %s, %d of %d pass", rep.Verdict, rep.Summary.Pass, len(list))
	}

	// Tokens decoded beyond the prompt: the micro-batches add up to more.
	info.Tokens = toks[:4]
	_, err = Run(&memRef{info: info, list: list}, path, RunOptions{Threads: 1})
	if err == nil || !strings.Contains(err.Error(), "starts 3 times") || !strings.Contains(err.Error(), "5 tokens in all, not the prompt's 4") {
		t.Fatalf("Run with more decoded tokens than the prompt: %v", err)
	}

	info.Tokens = toks
	rep, err = Compare(&memRef{info: info, list: list}, &memRef{info: info, list: ownForward(t, path, toks)}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "split their tokens differently") }) {
		t.Errorf("no warning for different micro-batches: %q", rep.Warnings)
	}
}

// TestRunSharedCounterpart runs against a reference with VIEW nodes that
// layerdiff's graph lacks, each compared with its source's counterpart, and
// an --inject: two rows read one streamed tensor, which must stay until
// both are measured (a tensor recomputed while the pass runs would share
// its injector); every row passes bit for bit.
func TestRunSharedCounterpart(t *testing.T) {
	path, _, _ := checkFixture(t)
	toks := []int32{1, 5, 9, 17}
	list := ownForward(t, path, toks)
	var ref []*tensor.Tensor
	for _, x := range list {
		ref = append(ref, x)
		if x.Name == "ffn_out-0" || x.Name == "l_out-0" || x.Name == "attn_norm-1" {
			v := *x
			v.Name = x.Name + " (view)"
			v.Key = v.Name
			v.Op = "VIEW"
			ref = append(ref, &v)
		}
	}
	inj, err := ParseInjection("attn_norm-1:add=0")
	if err != nil {
		t.Fatal(err)
	}
	info := reference.Info{Kind: reference.KindDump, Path: "mem", Tokens: toks, FlashAttn: "on"}
	for it := 0; it < 5; it++ {
		rep, err := Run(&memRef{info: info, list: ref}, path, RunOptions{Threads: 2, Inject: []Injection{inj},
			CompareOptions: CompareOptions{Policy: compare.MustPolicy(compare.ModeBitExact)}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Verdict != compare.VerdictPass || rep.Summary.Pass != len(ref) {
			t.Fatalf("verdict %s, %d of %d pass: %v", rep.Verdict, rep.Summary.Pass, len(ref), rep.Warnings)
		}
	}
}
