package reference

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// memSource is a Source held in memory.
type memSource struct {
	info  Info
	nodes []NodeInfo
	data  map[string][]float32
}

func (m *memSource) Describe() Info    { return m.info }
func (m *memSource) Nodes() []NodeInfo { return m.nodes }
func (m *memSource) Load(key string) (*tensor.Tensor, error) {
	for _, n := range m.nodes {
		if n.Key != key {
			continue
		}
		d, ok := m.data[key]
		if !ok {
			return nil, fmt.Errorf("%q: %w", key, ErrNoData)
		}
		return &tensor.Tensor{Key: key, Name: n.Name, Op: n.Op, Ne: n.Ne, Data: d}, nil
	}
	return nil, fmt.Errorf("%q: %w", key, ErrNotFound)
}

func (m *memSource) add(name, op, typ string, ne []int64, src []string, data []float32) {
	var k KeyMaker
	for _, n := range m.nodes {
		k.Next(n.Name)
	}
	n := NodeInfo{Key: k.Next(name), Name: name, Op: op, Type: typ, Ne: ne, Src: src}
	if data != nil {
		n.Data = FullData
		m.data[n.Key] = data
	}
	m.nodes = append(m.nodes, n)
}

// testSource has shapes that exercise every elision rule (dimensions of 1,
// 6 and 7 entries, ne3 > 1), special values, an f16 node, a quantized node
// and a node without values.
func testSource() *memSource {
	m := &memSource{info: Info{Tokens: []int32{1, 22, 333}, SystemInfo: "CPU : AVX2 = 1 | "}, data: map[string][]float32{}}
	fill := func(ne []int64, f func(i int) float32) []float32 {
		d := make([]float32, tensor.Numel(ne))
		for i := range d {
			d[i] = f(i)
		}
		return d
	}
	wave := func(i int) float32 { return float32(math.Sin(float64(i)*0.37) * math.Pow(10, float64(i%5)-2)) }
	m.add("inp_embd", "GET_ROWS", "f32", []int64{64, 3, 1, 1}, []string{"token_embd.weight", "leaf_2"}, fill([]int64{64, 3}, wave))
	m.add("one", "SCALE", "f32", []int64{1, 1, 1, 1}, []string{"inp_embd"}, []float32{-1.5e-5})
	m.add("six", "ADD", "f32", []int64{6, 6, 6, 1}, []string{"one", "inp_embd"}, fill([]int64{6, 6, 6}, wave))
	m.add("seven", "MUL", "f32", []int64{7, 7, 7, 2}, []string{"six", "one"}, fill([]int64{7, 7, 7, 2}, wave))
	special := []float32{float32(math.NaN()), float32(math.Copysign(math.NaN(), -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.Copysign(0, -1)), 0, -0.00004, 0.00005, 0.00015, 123456.78, -98765.4321, 1e-30}
	m.add("special", "CPY", "f32", []int64{12, 1, 1, 1}, []string{"leaf_9", "special"}, special)
	m.add("Qcur-0", "ROPE", "f32", []int64{16, 4, 9, 1}, []string{"Qcur-0 (reshaped)", "leaf_4"}, fill([]int64{16, 4, 9}, wave))
	m.add("cache_k_l0 (view)", "SET_ROWS", "f16", []int64{8, 16, 1, 1}, []string{"Qcur-0", "leaf_7", "cache_k_l0"}, fill([]int64{8, 16}, func(i int) float32 { return float32(i) / 8 }))
	m.add("w", "NONE", "q8_0", []int64{32, 2, 1, 1}, nil, nil)
	m.add("filtered", "MUL_MAT", "f32", []int64{10, 3, 1, 1}, []string{"w", "seven"}, nil)
	m.add("a very long node name beyond 24 columns", "SOFT_MAX", "f32", []int64{3, 2, 1, 1}, []string{"filtered", "leaf_14"}, []float32{1, 2, 3, 4, 5, 6})
	m.add("result_output", "MUL_MAT", "f32", []int64{8, 3, 1, 1}, []string{"output.weight", "result_norm"}, fill([]int64{8, 3}, wave))
	return m
}

// printed is v as "%12.4f" and parsed back.
func printed(v float32) float64 {
	x, _, ok := parseLogFloat(strings.TrimSpace(string(appendCFloat(nil, float64(v), 4, 12))))
	if !ok {
		panic(v)
	}
	return x
}

func sameFloat(a, b float64) bool {
	return a == b && math.Signbit(a) == math.Signbit(b) || math.IsNaN(a) && math.IsNaN(b)
}

// TestWriteLogRoundTrip writes a source in both formats and parses it back:
// the same nodes, and exactly the printed elements and sums.
func TestWriteLogRoundTrip(t *testing.T) {
	src := testSource()
	shapes := map[string][]int64{"token_embd.weight": {64, 512}, "output.weight": {16, 8}}
	for _, f := range []LogFormat{LogFormatOld, LogFormatNew} {
		t.Run(f.String(), func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteLog(&buf, src, LogOptions{Format: f, Shapes: shapes}); err != nil {
				t.Fatal(err)
			}
			l, err := ParseLog(bytes.NewReader(buf.Bytes()), "written.log")
			if err != nil {
				t.Fatal(err)
			}
			wantPrefix, wantLayout := "ggml_debug", "37-column"
			if f == LogFormatNew {
				wantPrefix, wantLayout = "common_debug_cb_eval", "4-space"
				if fmt.Sprint(l.Tokens) != fmt.Sprint(src.info.Tokens) {
					t.Errorf("tokens %v, want %v", l.Tokens, src.info.Tokens)
				}
			} else if l.Tokens != nil {
				t.Errorf("old format lists tokens %v", l.Tokens)
			}
			if l.Prefix != wantPrefix || l.Layout != wantLayout {
				t.Errorf("prefix %q layout %q, want %q %q", l.Prefix, l.Layout, wantPrefix, wantLayout)
			}
			if l.SystemInfo != strings.TrimSpace(src.info.SystemInfo) {
				t.Errorf("system info %q, want %q", l.SystemInfo, src.info.SystemInfo)
			}
			// the two nodes without printed values warn; nothing else does
			if len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0], `"filtered"`) {
				t.Errorf("warnings %q, want one about the node without values", l.Warnings)
			}
			if len(l.Tensors) != len(src.nodes) {
				t.Fatalf("%d tensors, want %d", len(l.Tensors), len(src.nodes))
			}
			for i, n := range src.nodes {
				lt := l.Tensors[i]
				if lt.Key != n.Key || lt.Name != n.Name || lt.Op != n.Op || lt.Type != n.Type || fmt.Sprint(lt.Ne) != fmt.Sprint(ne4(n.Ne)) {
					t.Errorf("tensor %d: %q %q %s %s %v, want %q %q %s %s %v", i, lt.Key, lt.Name, lt.Op, lt.Type, lt.Ne, n.Key, n.Name, n.Op, n.Type, n.Ne)
				}
				if len(n.Src) > 0 && fmt.Sprint(lt.Src) != fmt.Sprint(n.Src[:min(2, len(n.Src))]) {
					t.Errorf("tensor %q: sources %q, want %q", n.Name, lt.Src, n.Src)
				}
				data, ok := src.data[n.Key]
				if !ok || !printedTypes[n.Type] {
					if lt.Partial != nil {
						t.Errorf("tensor %q has values", n.Name)
					}
					continue
				}
				p := lt.Partial
				if p == nil {
					t.Errorf("tensor %q: no values", n.Name)
					continue
				}
				want := printedIndices(ne4(n.Ne))
				if fmt.Sprint(p.Index) != fmt.Sprint(want) {
					t.Errorf("tensor %q: indices %v, want %v", n.Name, p.Index, want)
					continue
				}
				for k, idx := range p.Index {
					if w := printed(data[idx]); !sameFloat(p.Values[k], w) {
						t.Errorf("tensor %q [%d]: %v, want %v (from %v)", n.Name, idx, p.Values[k], w, data[idx])
					}
				}
				ws, _ := strconv.ParseFloat(fmt.Sprintf("%f", tensor.SumF32(data)), 64)
				if s := tensor.SumF32(data); math.IsNaN(float64(s)) {
					ws = float64(s)
				}
				if !p.HasSum || !sameFloat(p.Sum, ws) || p.SumQuantum != 1e-6 && !math.IsNaN(ws) {
					t.Errorf("tensor %q: sum %v (has %v, quantum %v), want %v", n.Name, p.Sum, p.HasSum, p.SumQuantum, ws)
				}
			}
			text := buf.String()
			for _, s := range []string{"token_embd.weight{64, 512, 1, 1}, leaf_2{3, 1, 1, 1}})",
				"ROPE(Qcur-0 (reshaped){0, 0, 0, 0}, leaf_4{9, 1, 1, 1}})",
				"SET_ROWS(Qcur-0{16, 4, 9, 1}, leaf_7{4, 1, 1, 1}})",
				"CPY(leaf_9{12, 1, 1, 1}, special{12, 1, 1, 1}})",
				"SOFT_MAX(filtered{10, 3, 1, 1}, leaf_14{3, 2, 1, 1}})",
				"= (q8_0)       NONE(, }) = {32, 2, 1, 1}\n",
				": a very long node name beyond 24 columns = (f32)   SOFT_MAX(",
			} {
				if !strings.Contains(text, s) {
					t.Errorf("the log lacks %q", s)
				}
			}
		})
	}
}

// TestWriteLogSpecialValues checks the C spellings, byte for byte.
func TestWriteLogSpecialValues(t *testing.T) {
	for _, c := range []struct {
		x     float64
		prec  int
		width int
		want  string
	}{
		{math.NaN(), 4, 12, "         nan"},
		{math.Copysign(math.NaN(), -1), 4, 12, "        -nan"},
		{math.Inf(1), 4, 12, "         inf"},
		{math.Inf(-1), 6, 0, "-inf"},
		{math.Copysign(0, -1), 4, 12, "     -0.0000"},
		{-0.00004, 4, 12, "     -0.0000"},
		{0.00005, 4, 12, "      0.0001"},       // 0.00005 is 5.000000000000000409e-05 in binary
		{0.00015, 4, 12, "      0.0001"},       // 1.49999999999999993e-04
		{0.125, 2, 0, "0.12"},                  // an exact tie rounds to even, as glibc does
		{0.375, 2, 0, "0.38"},                  // idem
		{123456789.5, 4, 12, "123456789.5000"}, // wider than the field
		{float64(float32(-0.396885)), 6, 0, "-0.396885"},
	} {
		if got := string(appendCFloat(nil, c.x, c.prec, c.width)); got != c.want {
			t.Errorf("%%%d.%df of %v: %q, want %q", c.width, c.prec, c.x, got, c.want)
		}
	}
}

// TestWriteLogIdempotent rewrites a written log from its parsed form: the
// bytes are the same (but for the sign of NaN, which ParseLog drops).
func TestWriteLogIdempotent(t *testing.T) {
	src := testSource()
	for _, f := range []LogFormat{LogFormatOld, LogFormatNew} {
		var a, b bytes.Buffer
		if err := WriteLog(&a, src, LogOptions{Format: f}); err != nil {
			t.Fatal(err)
		}
		l, err := ParseLog(bytes.NewReader(a.Bytes()), "a.log")
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteLog(&b, l, LogOptions{Format: f}); err != nil {
			t.Fatal(err)
		}
		// ParseLog reads "-nan" as NaN without its sign
		want := strings.ReplaceAll(a.String(), "-nan", " nan")
		if want != b.String() {
			t.Errorf("%s: rewriting the parsed log changes it:\n%s", f, firstDiff(want, b.String()))
		}
	}
}

// logPrefix removes llama.cpp's logger prefixes ("0.00.073.437 I ").
var logPrefix = regexp.MustCompile(`(?m)^[0-9]+\.[0-9]{2}\.[0-9]{3}\.[0-9]{3} [A-Z] `)

// TestWriteLogRealLogs parses the real llama.cpp logs and writes them
// again in their format: the text is llama.cpp's, byte for byte (without
// the logger's prefixes), headers and the sources' shapes included.
func TestWriteLogRealLogs(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "llamacpp")
	shapes, err := WeightShapes(filepath.Join(dir, "S-Q8_0.gguf"))
	if err != nil {
		t.Skip(err)
	}
	for _, c := range []struct {
		file string
		f    LogFormat
	}{{"evalcb-old-S-Q8_0.log", LogFormatOld}, {"evalcb-S-Q8_0.log", LogFormatNew}} {
		raw, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Skip(err)
		}
		l, err := ParseLog(bytes.NewReader(raw), c.file)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteLog(&buf, l, LogOptions{Format: c.f, Shapes: shapes}); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimRight(logPrefix.ReplaceAllString(string(raw), ""), "\n")
		got := strings.TrimRight(buf.String(), "\n")
		if got != want {
			t.Errorf("%s rewritten differs:\n%s", c.file, firstDiff(want, got))
		}
	}
}

// firstDiff shows the first differing line of two texts.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(la), len(lb)); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, x, y)
		}
	}
	return "(same)"
}

func TestParseLogFormat(t *testing.T) {
	for _, s := range LogFormats {
		f, err := ParseLogFormat(s)
		if err != nil || f.String() != s {
			t.Errorf("%q: %v %v", s, f, err)
		}
	}
	if _, err := ParseLogFormat("newest"); err == nil {
		t.Error("accepted an unknown format")
	}
	if err := WriteLog(&bytes.Buffer{}, testSource(), LogOptions{}); err == nil {
		t.Error("WriteLog without a format succeeded")
	}
}

// TestWriteLogCacheShapes resolves the KV cache buffers of a dump from its
// hyperparameters.
func TestWriteLogCacheShapes(t *testing.T) {
	m := &Manifest{NCtx: 512, Model: ModelInfo{Architecture: "qwen3", HParams: map[string]any{
		"qwen3.attention.head_count_kv": float64(2), "qwen3.attention.head_count": float64(4),
		"qwen3.embedding_length": float64(256), "qwen3.attention.key_length": float64(128),
	}}}
	for _, c := range []struct {
		name string
		want [4]int64
		ok   bool
	}{
		{"cache_k_l0", [4]int64{256, 512, 1, 1}, true},
		{"cache_v_l12", [4]int64{128, 512, 1, 1}, true}, // no value_length: embd / heads
		{"cache_x_l0", [4]int64{}, false},
		{"cache_k_l0 (view)", [4]int64{}, false},
	} {
		got, ok := cacheShape(m, c.name)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %v %v, want %v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// FuzzWriteLog writes tensors of fuzzed shapes and values in both formats
// and parses them back: the printed elements and the sum are exactly the
// "%12.4f" and "%f" of the values, at the indices the layout shows.
func FuzzWriteLog(f *testing.F) {
	f.Add([]byte{7, 1, 1, 1, 0x3f, 0x80, 0, 0})
	f.Add([]byte{9, 8, 7, 2, 0x7f, 0xc0, 0, 1, 0xff, 0x80, 0, 0, 0x80, 0, 0, 0})
	f.Add([]byte{1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 4 {
			return
		}
		ne := []int64{int64(b[0]%9) + 1, int64(b[1]%9) + 1, int64(b[2]%9) + 1, int64(b[3]%3) + 1}
		vals := b[4:]
		data := make([]float32, tensor.Numel(ne))
		for i := range data {
			if len(vals) >= 4 {
				k := (4 * i) % (len(vals) - len(vals)%4)
				data[i] = math.Float32frombits(uint32(vals[k]) | uint32(vals[k+1])<<8 | uint32(vals[k+2])<<16 | uint32(vals[k+3])<<24)
			} else {
				data[i] = float32(i) * 0.37
			}
		}
		m := &memSource{data: map[string][]float32{}}
		m.add("t", "ADD", "f32", ne, []string{"a", "b"}, data)
		for _, format := range []LogFormat{LogFormatOld, LogFormatNew} {
			var buf bytes.Buffer
			if err := WriteLog(&buf, m, LogOptions{Format: format}); err != nil {
				t.Fatal(err)
			}
			l, err := ParseLog(bytes.NewReader(buf.Bytes()), "fuzz.log")
			if err != nil {
				t.Fatalf("%s: %v\n%s", format, err, buf.String())
			}
			if len(l.Tensors) != 1 || l.Tensors[0].Partial == nil {
				t.Fatalf("%s: %d tensors, warnings %q", format, len(l.Tensors), l.Warnings)
			}
			p := l.Tensors[0].Partial
			want := printedIndices(ne4(ne))
			if fmt.Sprint(p.Index) != fmt.Sprint(want) {
				t.Fatalf("%s: indices %v, want %v", format, p.Index, want)
			}
			for k, idx := range p.Index {
				if w := printed(data[idx]); !sameFloat(p.Values[k], w) {
					t.Fatalf("%s: [%d] = %v, want %v", format, idx, p.Values[k], w)
				}
			}
			s := tensor.SumF32(data)
			ws, _, _ := parseLogFloat(string(appendCFloat(nil, float64(s), 6, 0)))
			if !l.SumsPrintedOnly && (!p.HasSum || !sameFloat(p.Sum, ws)) {
				t.Fatalf("%s: sum %v (has %v), want %v", format, p.Sum, p.HasSum, ws)
			}
		}
	})
}
