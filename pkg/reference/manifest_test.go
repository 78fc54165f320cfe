package reference

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// testDump writes a small dump directory the way the dumper does: an f32
// node, a reshape of it stored by reference (data_of), an f16 node, an i32
// node and a node without stored data. It returns the directory and the
// manifest written.
func testDump(t testing.TB) (string, *Manifest) {
	t.Helper()
	dir := t.TempDir()
	embd := make([]float32, 64*8)
	for i := range embd {
		embd[i] = float32(i%17)*0.25 - 2
	}
	embd[5] = float32(math.NaN())
	embd[6] = float32(math.Inf(-1))
	half := []uint16{0x3c00, 0xc000, 0x3800, 0x0000, 0x8000, 0x7bff}
	halfF := []float32{1, -2, 0.5, 0, 0, 65504}
	ids := []int32{1, 15043, 3186}
	m := &Manifest{
		LayerdiffVersion: "v0.0.0-test",
		LlamaCppCommit:   "ec98e2002",
		LlamaCppSource:   "github.com/ollama/ollama v0.17.4",
		SystemInfo:       "CPU : SSE3 = 1 | AVX2 = 1 |",
		Model: ModelInfo{Path: "S-Q8_0.gguf", Size: 5156736, SHA256: strings.Repeat("ab", 32), Architecture: "llama",
			HParams: map[string]any{"n_embd": 64.0, "n_head": 4.0, "rope_freq_base": 10000.0, "rope_type": "norm"}},
		Prompt: "Hello", Tokens: ids, Threads: 2,
		FlashAttnRequested: "auto", FlashAttn: "on", TypeK: "f16", TypeV: "f16",
		NCtx: 256, NBatch: 8, NUBatch: 8, OutputAll: true,
	}
	add := func(n ManifestNode, data []float32) {
		n.Index = len(m.Nodes)
		if data != nil {
			st := ComputeStats(data)
			n.Stats = &st
		}
		m.Nodes = append(m.Nodes, n)
	}
	add(ManifestNode{Key: "embd", Name: "embd", Op: "GET_ROWS", Src: []string{"token_embd.weight", "inp_tokens"}, Type: "f32",
		Ne: []int64{64, 8, 1, 1}, File: NodeFileName(0, "embd")}, embd)
	add(ManifestNode{Key: "embd#2", Name: "embd", Op: "RESHAPE", Src: []string{"embd"}, Type: "f32",
		Ne: []int64{16, 4, 8, 1}, IsView: true, ViewSrc: "embd", DataOf: "embd"}, embd)
	add(ManifestNode{Key: "cache_k_l0 (view)", Name: "cache_k_l0 (view)", Op: "VIEW", Src: []string{"cache_k_l0"}, Type: "f16",
		Ne: []int64{3, 2, 1, 1}, File: NodeFileName(2, "cache_k_l0 (view)"), IsView: true, ViewSrc: "cache_k_l0", ViewOffs: 128}, halfF)
	add(ManifestNode{Key: "inp_tokens", Name: "inp_tokens", Op: "NONE", Type: "i32", Ne: []int64{3, 1, 1, 1}, File: NodeFileName(3, "inp_tokens")},
		[]float32{1, 15043, 3186})
	add(ManifestNode{Key: "node_9", Name: "node_9", Op: "SILU", Src: []string{"embd"}, Type: "f32", Ne: []int64{64, 8, 1, 1}}, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(WriteNPYFloat32(filepath.Join(dir, m.Nodes[0].File), NPYShape(m.Nodes[0].Ne), embd))
	must(WriteNPYFloat16(filepath.Join(dir, m.Nodes[2].File), NPYShape(m.Nodes[2].Ne), half))
	must(WriteNPYInt32(filepath.Join(dir, m.Nodes[3].File), NPYShape(m.Nodes[3].Ne), ids))
	must(m.Write(dir))
	return dir, m
}

func TestManifestRoundTrip(t *testing.T) {
	dir, m := testDump(t)
	got, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Compare through JSON so that NaN statistics compare equal.
	a, _ := json.Marshal(m)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Errorf("round trip differs:\n%s\n%s", a, b)
	}
	if got.Format != FormatName || got.FormatVersion != FormatVersion {
		t.Errorf("format %q v%d", got.Format, got.FormatVersion)
	}
	if s := got.Nodes[0].Stats; s.NaN != 1 || s.Inf != 1 || !math.IsNaN(float64(s.Sum)) || !math.IsInf(float64(s.Min), -1) || s.Max != 2 {
		t.Errorf("stats of embd: %+v", s)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	if !strings.Contains(string(raw), `"sum": "NaN"`) || !strings.Contains(string(raw), `"file": "0000-embd.npy"`) {
		t.Errorf("manifest JSON lacks the expected fields:\n%s", raw)
	}
	if got.Nodes[2].File != "0002-cache_k_l0__view_.npy" {
		t.Errorf("file name %q", got.Nodes[2].File)
	}
}

func TestDumpSource(t *testing.T) {
	dir, m := testDump(t)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	info := s.Describe()
	if info.Kind != KindDump || info.FlashAttn != "on" || !reflect.DeepEqual(info.Tokens, m.Tokens) || info.ModelSHA256 != m.Model.SHA256 {
		t.Errorf("info %+v", info)
	}
	nodes := s.Nodes()
	wantData := []DataKind{FullData, FullData, FullData, FullData, NoData}
	for i, n := range nodes {
		if n.Key != m.Nodes[i].Key || n.Data != wantData[i] {
			t.Errorf("node %d: %+v", i, n)
		}
	}
	e, err := s.Load("embd")
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Load("embd#2")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Ne, []int64{16, 4, 8, 1}) || r.Op != "RESHAPE" || len(r.Data) != len(e.Data) || r.Data[100] != e.Data[100] {
		t.Errorf("data_of node: %+v", r.Ne)
	}
	if h, err := s.Load("cache_k_l0 (view)"); err != nil || !reflect.DeepEqual(h.Data, []float32{1, -2, 0.5, 0, 0, 65504}) {
		t.Errorf("f16 node: %v %v", h, err)
	}
	if got := tensor.SumF32(e.Data); !math.IsNaN(float64(got)) {
		t.Errorf("sum %v", got)
	}
	if _, err := s.Load("node_9"); !errors.Is(err, ErrNoData) {
		t.Errorf("Load of a node without data: %v", err)
	}
	if _, err := s.Load("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of an unknown key: %v", err)
	}
	if s2, err := Open(filepath.Join(dir, ManifestFile)); err != nil || s2.Describe().Kind != KindDump {
		t.Errorf("Open(manifest.json): %v", err)
	}
}

func TestManifestErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(dir string, m map[string]any)
		want   string
	}{
		{"format", func(_ string, m map[string]any) { m["format"] = "other" }, `format is "other"`},
		{"version", func(_ string, m map[string]any) { m["format_version"] = 2 }, "format_version 2 not supported"},
		{"index", func(_ string, m map[string]any) { node(m, 1)["index"] = 5 }, `node 1 "embd#2": index is 5, want 1`},
		{"dup key", func(_ string, m map[string]any) { node(m, 1)["key"] = "embd" }, "key already used by node 0"},
		{"empty key", func(_ string, m map[string]any) { node(m, 1)["key"] = "" }, "empty key"},
		{"ne dims", func(_ string, m map[string]any) { node(m, 4)["ne"] = []int{1, 1, 1, 1, 1} }, "want 1 to 4 dimensions"},
		{"ne negative", func(_ string, m map[string]any) { node(m, 4)["ne"] = []int{-1} }, "negative dimension"},
		{"ne overflow", func(_ string, m map[string]any) { node(m, 4)["ne"] = []int64{1 << 40, 1 << 40} }, "overflows"},
		{"missing file", func(dir string, _ map[string]any) { os.Remove(filepath.Join(dir, "0000-embd.npy")) }, `node 0 "embd": open`},
		{"corrupt npy", func(dir string, _ map[string]any) {
			os.WriteFile(filepath.Join(dir, "0000-embd.npy"), []byte("\x93NUMPY\x01\x00"), 0o644)
		}, "0000-embd.npy: offset 0: not a .npy file"},
		{"shape", func(_ string, m map[string]any) { node(m, 0)["ne"] = []int{64, 4, 2, 1} },
			`file "0000-embd.npy" has shape (8, 64), but ne {64, 4, 2, 1} means (2, 4, 64)`},
		{"escape", func(_ string, m map[string]any) { node(m, 0)["file"] = "../x.npy" }, "clean path inside the dump directory"},
		{"absolute", func(_ string, m map[string]any) { node(m, 0)["file"] = "/etc/x.npy" }, "relative"},
		{"data_of unknown", func(_ string, m map[string]any) { node(m, 1)["data_of"] = "zzz" }, `data_of "zzz" is not an earlier node`},
		{"data_of no file", func(_ string, m map[string]any) { node(m, 4)["data_of"] = "embd#2" }, "names a node without a file"},
		{"data_of size", func(_ string, m map[string]any) { node(m, 4)["data_of"] = "cache_k_l0 (view)" }, "has 6 elements, this node 512"},
		{"both", func(_ string, m map[string]any) { node(m, 1)["file"] = "0000-embd.npy" }, "both file"},
		{"type", func(_ string, m map[string]any) { m["tokens"] = "x" }, "invalid manifest JSON"},
		{"bad float", func(_ string, m map[string]any) { node(m, 0)["stats"].(map[string]any)["min"] = "big" }, `invalid float "big"`},
	}
	for _, c := range cases {
		dir, _ := testDump(t)
		p := filepath.Join(dir, ManifestFile)
		raw, _ := os.ReadFile(p)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		c.mutate(dir, m)
		b, _ := json.MarshalIndent(m, "", "  ")
		os.WriteFile(p, b, 0o644)
		_, err := ReadManifest(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: error %v, want it to contain %q and the path", c.name, err, c.want)
		}
	}

	dir := t.TempDir()
	if _, err := ReadManifest(dir); err == nil || !os.IsNotExist(errors.Unwrap(err)) {
		t.Errorf("missing manifest: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ManifestFile), []byte("{\n  \"format\": \"layerdiff-dump\",\n  \"nodes\": [,]\n}\n"), 0o644)
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), ManifestFile+":3: invalid manifest JSON") || !errors.Is(err, ErrFormat) {
		t.Errorf("corrupt manifest: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"format": "layerdiff-dump", "format_version": 1} {}`), 0o644)
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "data after the manifest") {
		t.Errorf("trailing data: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"format": "layerdiff-dump", "format_version": 1, "nodes": [`), 0o644)
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), ":1: invalid manifest JSON") {
		t.Errorf("truncated manifest: %v", err)
	}
}

func node(m map[string]any, i int) map[string]any {
	return m["nodes"].([]any)[i].(map[string]any)
}

func TestFloatJSON(t *testing.T) {
	for _, v := range []float64{0, -0.5, 1e-300, 59.455322, math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1)} {
		b, err := json.Marshal(Float(v))
		if err != nil {
			t.Fatal(err)
		}
		var f Float
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !(float64(f) == v || math.IsNaN(v) && math.IsNaN(float64(f))) {
			t.Errorf("%v → %s → %v", v, b, f)
		}
	}
	for s, want := range map[string]float64{`"inf"`: math.Inf(1), `"-INF"`: math.Inf(-1), `"+Infinity"`: math.Inf(1), `1e3`: 1000} {
		var f Float
		if err := json.Unmarshal([]byte(s), &f); err != nil || float64(f) != want {
			t.Errorf("%s → %v, %v", s, f, err)
		}
	}
}

func TestComputeStats(t *testing.T) {
	s := ComputeStats([]float32{1, float32(math.NaN()), -3, float32(math.Inf(1))})
	if s.NaN != 1 || s.Inf != 1 || s.Min != -3 || !math.IsInf(float64(s.Max), 1) || !math.IsNaN(float64(s.Sum)) {
		t.Errorf("%+v", s)
	}
	if s := ComputeStats(nil); s != (Stats{}) {
		t.Errorf("empty: %+v", s)
	}
	// The float32 accumulator reproduces llama.cpp's printed sum of the
	// 32000 logits, where a float64 sum does not (59.455287).
	b, err := os.ReadFile(filepath.Join(sharedDir(t), "llamacpp", "llama-debug-S-Q8_0", "llamacpp-S-Q8_0.bin"))
	if err != nil {
		t.Skip(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	if got := float64(ComputeStats(v).Sum); math.Abs(got-59.455322) > 5e-7 {
		t.Errorf("sum of the real logits %f, llama.cpp printed 59.455322", got)
	}
}

func TestUniqueKeys(t *testing.T) {
	got := UniqueKeys([]string{"a", "b", "a", "a", "a#2", "c", "a", "a#2"})
	want := []string{"a", "b", "a#2", "a#3", "a#2@4", "c", "a#4", "a#2#2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got = UniqueKeys([]string{"Qcur-0", "Qcur-0", "Qcur-0", "norm-0", "norm-0"})
	want = []string{"Qcur-0", "Qcur-0#2", "Qcur-0#3", "norm-0", "norm-0#2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestNPYShape(t *testing.T) {
	if got := NPYShape([]int64{64, 8, 1, 1}); !reflect.DeepEqual(got, []int64{8, 64}) {
		t.Errorf("NPYShape: %v", got)
	}
	if got := NPYShape([]int64{1, 1, 1, 1}); !reflect.DeepEqual(got, []int64{1}) {
		t.Errorf("NPYShape of a scalar: %v", got)
	}
	if got := NeFromNPYShape([]int64{2, 4, 16}); !reflect.DeepEqual(got, []int64{16, 4, 2}) {
		t.Errorf("NeFromNPYShape: %v", got)
	}
}

// FuzzManifest feeds arbitrary manifest JSON to ReadManifest in a directory
// holding one valid .npy file.
func FuzzManifest(f *testing.F) {
	dir, _ := testDump(f)
	raw, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	f.Add(raw)
	f.Add([]byte(`{"format":"layerdiff-dump","format_version":1,"nodes":[{"index":0,"key":"a","ne":[512],"file":"0000-embd.npy"}]}`))
	f.Add([]byte(`{"format":"layerdiff-dump","format_version":1,"nodes":[{"index":0,"key":"a","ne":[1],"data_of":"a"}]}`))
	f.Add([]byte(`{"nodes":[{"stats":{"sum":"NaN","min":1e999}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, ManifestFile)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadManifest(dir)
		if err != nil {
			return
		}
		d := &Dump{Dir: dir, Manifest: m, byKey: map[string]int{}}
		for i, n := range m.Nodes {
			d.byKey[n.Key] = i
		}
		for _, n := range d.Nodes() {
			tt, err := d.Load(n.Key)
			if err == nil && int64(len(tt.Data)) != tensor.Numel(tt.Ne) {
				t.Fatalf("node %q: %d values for ne %v", n.Key, len(tt.Data), tt.Ne)
			}
		}
	})
}

// sharedDir finds the read-only shared/ directory beside the work tree by
// walking up from the package directory; tests that need it skip without it.
func sharedDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.Abs(".")
	if err != nil {
		t.Skip(err)
	}
	for {
		if st, err := os.Stat(filepath.Join(d, "shared", "llamacpp")); err == nil && st.IsDir() {
			return filepath.Join(d, "shared")
		}
		parent := filepath.Dir(d)
		if parent == d {
			t.Skip("shared/ not found")
		}
		d = parent
	}
}

func TestGatherGGML(t *testing.T) {
	// A {3, 2} f32 tensor stored transposed: element (i0, i1) at i0*8 + i1*4.
	raw := f32Bytes(binary.LittleEndian, 0, 10, 1, 11, 2, 12)
	got, err := GatherGGML(raw, 4, []int64{3, 2, 1, 1}, []uint64{8, 4, 24, 24})
	if err != nil {
		t.Fatal(err)
	}
	if want := f32Bytes(binary.LittleEndian, 0, 1, 2, 10, 11, 12); string(got) != string(want) {
		t.Errorf("transposed gather: %v", got)
	}
	// Contiguous rows are copied whole.
	got, err = GatherGGML(raw, 4, []int64{2, 3}, []uint64{4, 8})
	if err != nil || string(got) != string(raw) {
		t.Errorf("contiguous gather: %v %v", got, err)
	}
	for _, c := range []struct {
		ne []int64
		nb []uint64
	}{
		{[]int64{3, 2}, []uint64{8, 8}},             // reaches past the end
		{[]int64{4, 2}, []uint64{4, 8}},             // more elements than bytes
		{[]int64{1 << 62, 4}, []uint64{4, 1 << 62}}, // overflow
		{[]int64{-1}, []uint64{4}},
		{[]int64{2}, []uint64{4, 4}},
	} {
		if _, err := GatherGGML(raw, 4, c.ne, c.nb); err == nil {
			t.Errorf("ne %v nb %v: no error", c.ne, c.nb)
		}
	}
}
