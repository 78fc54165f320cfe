package reference

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/tensor"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t testing.TB, data []byte, name string) *Log {
	t.Helper()
	l, err := ParseLog(bytes.NewReader(data), name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return l
}

func find(l *Log, key string) *LogTensor {
	for i := range l.Tensors {
		if l.Tensors[i].Key == key {
			return &l.Tensors[i]
		}
	}
	return nil
}

// known returns the printed value at flat index i of t.
func known(t *LogTensor, i int64) (float64, bool) {
	if t == nil || t.Partial == nil {
		return 0, false
	}
	for k, j := range t.Partial.Index {
		if j == i {
			return t.Partial.Values[k], true
		}
	}
	return 0, false
}

// checkSnippetCommon asserts what every log of the S-Q8_0 run shows, in the
// snippets and in the full logs.
func checkSnippetCommon(t *testing.T, l *Log) {
	t.Helper()
	e := find(l, "embd")
	if e == nil || e.Op != "GET_ROWS" || e.Type != "f32" || !reflect.DeepEqual(e.Ne, []int64{64, 8, 1, 1}) ||
		!reflect.DeepEqual(e.Src, []string{"token_embd.weight", "inp_tokens"}) {
		t.Fatalf("embd: %+v", e)
	}
	p := e.Partial
	wantIdx := []int64{0, 1, 2, 61, 62, 63, 64, 65, 66}
	if len(p.Index) != 36 || !reflect.DeepEqual(p.Index[:9], wantIdx) || p.Index[35] != 511 {
		t.Errorf("embd indices %v", p.Index)
	}
	if p.Values[0] != 0.0121 || p.Values[1] != -0.0163 || p.Values[5] != 0.0470 || p.Values[35] != -0.0124 {
		t.Errorf("embd values %v", p.Values)
	}
	if p.Sum != -0.396885 || !p.HasSum || p.Quantum != 1e-4 || math.Abs(p.SumQuantum-1e-6) > 1e-18 {
		t.Errorf("embd sum %v %v quantum %v %v", p.Sum, p.HasSum, p.Quantum, p.SumQuantum)
	}
	r := find(l, "Qcur-0#2")
	if r == nil || r.Op != "RESHAPE" || !reflect.DeepEqual(r.Ne, []int64{16, 4, 8, 1}) || len(r.Partial.Index) != 6*4*6 {
		t.Fatalf("Qcur-0#2: %+v", r)
	}
	// ne {16, 4, 8}: element (i0 15, i1 3, i2 7) is flat index 511, printed 0.0944.
	if v, ok := known(r, 511); !ok || v != 0.0944 {
		t.Errorf("Qcur-0#2[511] = %v, %v", v, ok)
	}
	if v, ok := known(r, 4*16*3); ok {
		t.Errorf("an elided block (i2 = 3) is known: %v", v)
	}
	if rope := find(l, "Qcur-0#3"); rope == nil || rope.Op != "ROPE" || !reflect.DeepEqual(rope.Src, []string{"Qcur-0", "leaf_5"}) {
		t.Errorf("Qcur-0#3: %+v", rope)
	}
	out := find(l, "result_output")
	if out == nil || !reflect.DeepEqual(out.Ne, []int64{32000, 1, 1, 1}) ||
		!reflect.DeepEqual(out.Partial.Index, []int64{0, 1, 2, 31997, 31998, 31999}) ||
		!reflect.DeepEqual(out.Partial.Values, []float64{-0.0499, -0.2540, 0.1794, 0.1005, 0.0800, 0.0374}) ||
		out.Partial.Sum != 59.455322 {
		t.Errorf("result_output: %+v %+v", out, out.Partial)
	}
	checkReshapes(t, l)
}

// checkReshapes verifies the parser's index arithmetic on the real data: a
// RESHAPE (or a contiguous VIEW at offset 0 of the same size) shows its
// source's values at the same flat indices.
func checkReshapes(t *testing.T, l *Log) {
	t.Helper()
	checked := 0
	for i, r := range l.Tensors {
		if r.Op != "RESHAPE" || r.Partial == nil || len(r.Src) == 0 {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			s := l.Tensors[j]
			if s.Name != r.Src[0] || s.Partial == nil {
				continue
			}
			if tensor.Numel(s.Ne) != tensor.Numel(r.Ne) {
				t.Errorf("%s: source %s has another size", r.Key, s.Key)
				break
			}
			common := 0
			for k, idx := range r.Partial.Index {
				if v, ok := known(&l.Tensors[j], idx); ok {
					common++
					if v != r.Partial.Values[k] {
						t.Errorf("%s[%d] = %v but source %s has %v", r.Key, idx, r.Partial.Values[k], s.Key, v)
					}
				}
			}
			if common == 0 {
				t.Errorf("%s and %s share no known index", r.Key, s.Key)
			}
			if r.Partial.Sum != s.Partial.Sum {
				t.Errorf("%s sum %v, source %s sum %v", r.Key, r.Partial.Sum, s.Key, s.Partial.Sum)
			}
			checked++
			break
		}
	}
	if checked == 0 {
		t.Error("no RESHAPE checked")
	}
}

var sRunTokens = []int32{1, 15043, 3186, 29892, 445, 338, 263, 1243}

func TestRealLogs(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "llamacpp")
	var logs []*Log
	for _, c := range []struct {
		file, prefix, layout string
		tokens               []int32
		lastLine             int
	}{
		{"evalcb-old-S-Q8_0.log", "ggml_debug", "37-column", nil, 1277},
		{"evalcb-S-Q8_0.log", "common_debug_cb_eval", "4-space", sRunTokens, 1286},
	} {
		l, err := ReadLog(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
		if len(l.Tensors) != 68 || len(l.Warnings) != 0 || l.Prefix != c.prefix || l.Layout != c.layout || l.FlashAttn != "on" ||
			!reflect.DeepEqual(l.Tokens, c.tokens) || l.SumsPrintedOnly || !strings.Contains(l.SystemInfo, "AVX512 = 1") {
			t.Errorf("%s: %d tensors, prefix %q, layout %q, flash %q, tokens %v, warnings %q", c.file, len(l.Tensors), l.Prefix, l.Layout, l.FlashAttn, l.Tokens, l.Warnings)
		}
		checkSnippetCommon(t, l)
		fa := find(l, "node_21")
		if fa == nil || fa.Op != "FLASH_ATTN_EXT" || !reflect.DeepEqual(fa.Src, []string{"Qcur-0 (view) (permuted)", "cache_k_l0 (view) (permuted)"}) {
			t.Errorf("%s: node_21 %+v", c.file, fa)
		}
		if ck := find(l, "cache_k_l0 (view)#2"); ck == nil || ck.Type != "f16" || ck.Op != "VIEW" || !reflect.DeepEqual(ck.Ne, []int64{16, 2, 256, 1}) {
			t.Errorf("%s: cache_k_l0 (view)#2 %+v", c.file, ck)
		}
		// Keys: per layer Qcur and Kcur repeat twice, Vcur, norm and the two
		// cache views once: 16 "#N" keys.
		repeats := 0
		for _, tt := range l.Tensors {
			if strings.Contains(tt.Key, "#") {
				repeats++
			}
			if tt.Partial == nil || int64(len(tt.Partial.Index)) > tensor.Numel(tt.Ne) {
				t.Errorf("%s: %s has no or too many values", c.file, tt.Key)
			}
		}
		if repeats != 16 {
			t.Errorf("%s: %d repeated keys, want 16", c.file, repeats)
		}
		if last := l.Tensors[67]; last.Key != "result_output" || last.Line != c.lastLine {
			t.Errorf("%s: last tensor %q at line %d", c.file, last.Key, last.Line)
		}
	}
	// The two logs are the same run printed two ways: every tensor must
	// parse to the same values.
	for i := range logs[0].Tensors {
		a, b := logs[0].Tensors[i], logs[1].Tensors[i]
		a.Line, b.Line, a.EndOffset, b.EndOffset = 0, 0, 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Errorf("tensor %d differs between the two formats:\n%+v\n%+v", i, a, b)
		}
	}
	// The last-token logits of llama-debug agree with the log's printed
	// elements to printing precision.
	lg, err := OpenLogits(filepath.Join(dir, "llama-debug-S-Q8_0"))
	if err != nil {
		t.Fatal(err)
	}
	out := find(logs[1], "result_output")
	for k, idx := range out.Partial.Index {
		if d := math.Abs(float64(lg.data[idx]) - out.Partial.Values[k]); d > out.Partial.Quantum/2 {
			t.Errorf("logit %d: log %v, .bin %v", idx, out.Partial.Values[k], lg.data[idx])
		}
	}
	if s := tensor.SumF32(lg.data); float64(s) != out.Partial.Sum && math.Abs(float64(s)-out.Partial.Sum) > out.Partial.SumQuantum/2 {
		t.Errorf("float32 sum of the logits %v, log %v", s, out.Partial.Sum)
	}
}

// Variants of the old snippet that must parse to the same tensors.
func variants(old []byte) map[string][]byte {
	s := string(old)
	v := map[string][]byte{}
	// libcommon's printer before the 4-space layout (January 2026).
	v["common_debug_cb_eval-37"] = []byte(strings.ReplaceAll(s, "ggml_debug: ", "common_debug_cb_eval: "))
	v["crlf"] = []byte(strings.ReplaceAll(s, "\n", "\r\n"))
	// llama-debug with LOG_DBG and timestamps: every log entry prefixed,
	// values being separate entries; "sum    = " and "sum_sq = " lines.
	var dbg strings.Builder
	for i, ln := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		pre := fmt.Sprintf("0.01.%03d.%03d D ", i%1000, (7*i)%1000)
		tr := strings.TrimSpace(ln)
		switch {
		case strings.HasPrefix(tr, "[") && strings.HasSuffix(tr, "],"):
			ind := ln[:len(ln)-len(strings.TrimLeft(ln, " "))]
			dbg.WriteString(pre + ind + "[")
			for j, f := range strings.Split(tr[1:len(tr)-2], ", ") {
				if j > 0 {
					dbg.WriteString(pre + ", ")
				}
				dbg.WriteString(pre + f)
			}
			dbg.WriteString(pre + "],\n")
		case strings.HasPrefix(tr, "sum = "):
			ind := ln[:len(ln)-len(strings.TrimLeft(ln, " "))]
			dbg.WriteString(pre + ind + "sum    = " + strings.TrimPrefix(tr, "sum = ") + "\n")
			dbg.WriteString(pre + ind + "sum_sq = 12.345678\n")
		default:
			dbg.WriteString(pre + ln + "\n")
		}
	}
	v["llama-debug-prefixed"] = []byte(dbg.String())
	// Garbage lines between tensors, ANSI colours on headers.
	var g strings.Builder
	for _, ln := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(ln, "ggml_debug: ") {
			g.WriteString("llama_perf_context_print:        load time =      12.34 ms\n")
			g.WriteString("[garbage] ]], sum = 1 ..., \n\n")
			g.WriteString("\x1b[32m" + strings.TrimSuffix(ln, "\n") + "\x1b[0m\n")
			continue
		}
		g.WriteString(ln)
	}
	v["garbage-between"] = []byte(g.String())
	return v
}

func sameTensors(t *testing.T, what string, want, got *Log) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Errorf("%s: %d tensors, want %d (warnings %q)", what, len(got.Tensors), len(want.Tensors), got.Warnings)
		return
	}
	for i := range want.Tensors {
		a, b := want.Tensors[i], got.Tensors[i]
		a.Line, b.Line, a.EndOffset, b.EndOffset = 0, 0, 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: tensor %d:\n got %+v %+v\nwant %+v %+v", what, i, b, b.Partial, a, a.Partial)
		}
	}
}

func TestLogVariants(t *testing.T) {
	old := readTestdata(t, "evalcb-old-snippet.log")
	ref := parse(t, old, "old")
	checkSnippetCommon(t, ref)
	if len(ref.Tensors) != 12 || len(ref.Warnings) != 0 {
		t.Fatalf("snippet: %d tensors, warnings %q", len(ref.Tensors), ref.Warnings)
	}
	for name, data := range variants(old) {
		l := parse(t, data, name)
		sameTensors(t, name, ref, l)
		if len(l.Warnings) != 0 {
			t.Errorf("%s: warnings %q", name, l.Warnings)
		}
		if name == "common_debug_cb_eval-37" && (l.Prefix != "common_debug_cb_eval" || l.Layout != "37-column") {
			t.Errorf("%s: prefix %q layout %q", name, l.Prefix, l.Layout)
		}
	}
	l := parse(t, readTestdata(t, "evalcb-snippet.log"), "new")
	sameTensors(t, "4-space snippet", ref, l)
	if !reflect.DeepEqual(l.Tokens, sRunTokens) {
		t.Errorf("tokens %v", l.Tokens)
	}
}

// lineStarts returns the byte offset of each line's start.
func lineStarts(data []byte) []int64 {
	starts := []int64{0}
	for i, c := range data {
		if c == '\n' && i+1 < len(data) {
			starts = append(starts, int64(i+1))
		}
	}
	return starts
}

var cutRe = regexp.MustCompile(`log ends inside tensor "(.*)" \(header at line (\d+)\): cut at line (\d+)`)

// checkCuts parses data cut at each offset and checks that the result is
// exactly the tensors complete before the cut, with a warning naming the
// tensor being cut and the line where the log stops.
func checkCuts(t *testing.T, name string, data []byte, offsets []int) {
	t.Helper()
	full := parse(t, data, name)
	starts := lineStarts(data)
	// A header is seen once its closing brace is there.
	hdrEnd := make([]int64, len(full.Tensors))
	for i, tt := range full.Tensors {
		ln := data[starts[tt.Line-1]:]
		if j := bytes.IndexByte(ln, '\n'); j >= 0 {
			ln = ln[:j]
		}
		hdrEnd[i] = starts[tt.Line-1] + int64(bytes.LastIndexByte(ln, '}')) + 1
	}
	failures := 0
	for _, k := range offsets {
		if failures > 5 {
			t.Fatalf("%s: too many failures", name)
		}
		cut := data[:k]
		l, err := ParseLog(bytes.NewReader(cut), name)
		want := 0
		for _, tt := range full.Tensors {
			if tt.EndOffset <= int64(k) {
				want++
			}
		}
		cutLine := bytes.Count(cut, []byte{'\n'})
		if k > 0 && cut[k-1] != '\n' {
			cutLine++
		}
		inside := want < len(full.Tensors) && int64(k) >= hdrEnd[want]
		if want == 0 {
			if err == nil || !errors.Is(err, ErrFormat) {
				t.Errorf("%s cut at %d: no complete tensor, but err = %v", name, k, err)
				failures++
			} else if inside && !strings.Contains(err.Error(), fmt.Sprintf("cut at line %d", cutLine)) {
				t.Errorf("%s cut at %d: error %q does not say where", name, k, err)
				failures++
			}
			continue
		}
		if err != nil {
			t.Errorf("%s cut at %d: %v", name, k, err)
			failures++
			continue
		}
		if len(l.Tensors) != want {
			t.Errorf("%s cut at %d (line %d): %d tensors, want %d; warnings %q", name, k, cutLine, len(l.Tensors), want, l.Warnings)
			failures++
			continue
		}
		for i := range l.Tensors {
			a, b := full.Tensors[i], l.Tensors[i]
			if a.Key != b.Key || a.EndOffset != b.EndOffset || !reflect.DeepEqual(a.Partial, b.Partial) {
				t.Errorf("%s cut at %d: tensor %d %q differs", name, k, i, a.Key)
				failures++
				break
			}
		}
		var m []string
		for _, w := range l.Warnings {
			if mm := cutRe.FindStringSubmatch(w); mm != nil {
				m = mm
			}
		}
		switch {
		case inside && m == nil:
			t.Errorf("%s cut at %d inside %q: no cut warning in %q", name, k, full.Tensors[want].Key, l.Warnings)
			failures++
		case inside && (m[1] != full.Tensors[want].Name || m[2] != strconv.Itoa(full.Tensors[want].Line) || m[3] != strconv.Itoa(cutLine)):
			t.Errorf("%s cut at %d: warning %q, want tensor %q header line %d cut line %d", name, k, m[0], full.Tensors[want].Name, full.Tensors[want].Line, cutLine)
			failures++
		case !inside && m != nil:
			t.Errorf("%s cut at %d between tensors: unexpected warning %q", name, k, m[0])
			failures++
		}
	}
}

// exhaustive is set by LAYERDIFF_EXHAUSTIVE=1: cut the full real logs at
// every byte offset (several minutes).
var exhaustive = os.Getenv("LAYERDIFF_EXHAUSTIVE") != ""

func allOffsets(n, stride int) []int {
	var o []int
	for k := 0; k <= n; k += stride {
		o = append(o, k)
	}
	if o[len(o)-1] != n {
		o = append(o, n)
	}
	return o
}

func TestLogCutEveryOffset(t *testing.T) {
	stride := 1
	if testing.Short() {
		stride = 7
	}
	for _, f := range []string{"evalcb-old-snippet.log", "evalcb-snippet.log"} {
		data := readTestdata(t, f)
		checkCuts(t, f, data, allOffsets(len(data), stride))
	}
	old := readTestdata(t, "evalcb-old-snippet.log")
	for name, data := range variants(old) {
		checkCuts(t, name, data, allOffsets(len(data), 11*stride))
	}
}

// TestRealLogCuts cuts the full real logs at every byte around each tensor
// boundary (the header line and the sum line) and at a stride elsewhere;
// every byte with LAYERDIFF_EXHAUSTIVE=1.
func TestRealLogCuts(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "llamacpp")
	for _, f := range []string{"evalcb-old-S-Q8_0.log", "evalcb-S-Q8_0.log"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		var offsets []int
		if exhaustive {
			offsets = allOffsets(len(data), 1)
		} else {
			full := parse(t, data, f)
			starts := lineStarts(data)
			seen := map[int]bool{}
			add := func(lo, hi int64) {
				for k := max(lo, 0); k <= min(hi, int64(len(data))); k++ {
					if !seen[int(k)] {
						seen[int(k)] = true
						offsets = append(offsets, int(k))
					}
				}
			}
			stride := 997
			if testing.Short() {
				stride = 4999
			}
			for _, k := range allOffsets(len(data), stride) {
				add(int64(k), int64(k))
			}
			for i, tt := range full.Tensors {
				if testing.Short() && i%8 != 0 {
					continue
				}
				h := starts[tt.Line-1]
				he := h + int64(bytes.IndexByte(data[h:], '\n'))
				add(h-2, h+2)
				add(he-3, he+2)
				add(tt.EndOffset-12, tt.EndOffset+2)
			}
		}
		checkCuts(t, f, data, offsets)
	}
}

func TestLogNaNInfAndDamage(t *testing.T) {
	log := strings.Join([]string{
		"ggml_debug:                        a = (f32)        ADD(x{2, 2, 1, 1}, y{2, 2, 1, 1}}) = {2, 2, 1, 1}",
		"                                     [",
		"                                      [",
		"                                       [         nan,         -nan],",
		"                                       [         inf,        -inf],",
		"                                      ],",
		"                                     ]",
		"                                     sum = nan",
		// A damaged tensor: a row with too few values.
		"ggml_debug:                        b = (f32)        ADD(x{4, 1, 1, 1}, }) = {4, 1, 1, 1}",
		"                                     [",
		"                                      [",
		"                                       [      1.0000,      2.0000],",
		"                                      ],",
		"                                     ]",
		"                                     sum = 3.000000",
		// A quantized node: header only.
		"ggml_debug:                  q = (q8_0)        CPY(x{32, 1, 1, 1}, }) = {32, 1, 1, 1}",
		// A stray line inside a tensor, and a name that ggml padded.
		"ggml_debug:                   (view) = (f32)       VIEW(x{2, 1, 1, 1}, }) = {2, 1, 1, 1}",
		"                                     [",
		"this line came from another thread",
		"                                      [",
		"                                       [      1.5000,     -2.2500],",
		"                                      ],",
		"                                     ]",
		"                                     sum = -0.750000",
		// A tensor interrupted by the next header.
		"ggml_debug:                        c = (f32)        ADD(x{2, 1, 1, 1}, }) = {2, 1, 1, 1}",
		"                                     [",
		"ggml_debug:                        d = (f32)        ADD(x{2, 1, 1, 1}, }) = {2, 1, 1, 1}",
		"                                     [",
		"                                      [",
		"                                       [      1.0000,      2.0000],",
		"                                      ],",
		"                                     ]",
		"                                     sum = 3.000000",
		"",
	}, "\n")
	l := parse(t, []byte(log), "t.log")
	keys := []string{}
	for _, tt := range l.Tensors {
		keys = append(keys, tt.Key)
	}
	if !reflect.DeepEqual(keys, []string{"a", "b", "q", " (view)", "c", "d"}) {
		t.Fatalf("keys %q", keys)
	}
	a := l.Tensors[0].Partial
	if !math.IsNaN(a.Values[0]) || !math.IsNaN(a.Values[1]) || !math.IsInf(a.Values[2], 1) || !math.IsInf(a.Values[3], -1) || !math.IsNaN(a.Sum) || !a.HasSum {
		t.Errorf("a: %+v", a)
	}
	if l.Tensors[1].Partial != nil || l.Tensors[2].Partial != nil || l.Tensors[4].Partial != nil {
		t.Errorf("damaged, quantized or interrupted tensors have values")
	}
	if v := l.Tensors[3].Partial; v == nil || !reflect.DeepEqual(v.Values, []float64{1.5, -2.25}) || v.Sum != -0.75 {
		t.Errorf("(view): %+v", v)
	}
	if d := l.Tensors[5].Partial; d == nil || d.Sum != 3 {
		t.Errorf("d: %+v", d)
	}
	want := []string{
		`t.log:12: tensor "b" (header at line 9): row has 2 values, want ne[0] = 4; kept without values`,
		`t.log:19: skipping unexpected line inside tensor " (view)" (header at line 17): "this line came from another thread"`,
		`t.log:27: tensor "c" (header at line 25) is incomplete: interrupted by the next tensor header; kept without values`,
		`t.log:27: log ends after tensor "d" with nothing after it; llama.cpp logs usually end with result_output, so the end may be lost`,
	}
	if !reflect.DeepEqual(l.Warnings, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(l.Warnings, "\n"), strings.Join(want, "\n"))
	}
	src, err := Open(writeTemp(t, "t.log", log))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Load("q"); !errors.Is(err, ErrNoData) {
		t.Errorf("Load of a quantized node: %v", err)
	}
	if tt, err := src.Load(" (view)"); err != nil || tt.Partial == nil || tt.Data != nil {
		t.Errorf("Load: %v %v", tt, err)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLogPrintedOnlySums rewrites the snippet's sums the way llama.cpp
// printed them before August 2025 (sum of the printed values only).
func TestLogPrintedOnlySums(t *testing.T) {
	old := readTestdata(t, "evalcb-old-snippet.log")
	ref := parse(t, old, "old")
	lines := strings.Split(string(old), "\n")
	for _, tt := range ref.Tensors {
		var s float32
		for _, v := range tt.Partial.Values {
			s += float32(v)
		}
		for i := tt.Line; i < len(lines); i++ {
			if strings.HasPrefix(strings.TrimSpace(lines[i]), "sum = ") {
				lines[i] = fmt.Sprintf("                                     sum = %f", s)
				break
			}
		}
	}
	small := "ggml_debug:                        z = (f32)        ADD(x{2, 1, 1, 1}, }) = {2, 1, 1, 1}\n" +
		"                                     [\n                                      [\n" +
		"                                       [      1.0000,      2.0000],\n" +
		"                                      ],\n                                     ]\n                                     sum = 3.000000\n"
	l := parse(t, []byte(strings.Join(lines, "\n")+small), "printed-only")
	if !l.SumsPrintedOnly {
		t.Fatal("printed-only sums not detected")
	}
	for _, tt := range l.Tensors {
		if tt.Partial.HasSum != (tt.Key == "z") {
			t.Errorf("%s: HasSum %v", tt.Key, tt.Partial.HasSum)
		}
	}
	if len(l.Warnings) != 2 || !strings.Contains(l.Warnings[1], "cover only the printed elements") {
		t.Errorf("warnings %q", l.Warnings)
	}
}

func TestLogNothing(t *testing.T) {
	for _, c := range []struct{ log, want string }{
		{"", "no tensor header found"},
		{"hello\nworld\n", "no tensor header found"},
		{"ggml_debug:                        z = (f32)        ADD(x{2, 1, 1, 1}, }) = {2, 1, 1, 1}\n   [\n", `log ends inside tensor "z" (header at line 1): cut at line 2`},
	} {
		_, err := ParseLog(strings.NewReader(c.log), "x.log")
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "x.log: ") {
			t.Errorf("%q: error %v, want %q", c.log, err, c.want)
		}
	}
}

func TestParseLogFloat(t *testing.T) {
	for _, c := range []struct {
		s   string
		v   float64
		dec int
		ok  bool
	}{
		{"0.0121", 0.0121, 4, true}, {"-0.0163", -0.0163, 4, true}, {"12345678.1234", 12345678.1234, 4, true},
		{"-0.396885", -0.396885, 6, true}, {"3", 3, 0, true}, {"inf", math.Inf(1), 0, true}, {"-inf", math.Inf(-1), 0, true},
		{"nan", math.NaN(), 0, true}, {"-nan", math.NaN(), 0, true}, {"-nan(ind)", math.NaN(), 0, true},
		{"1.#INF00", math.Inf(1), 0, true}, {"-1.#QNAN0", math.NaN(), 0, true},
		{"", 0, 0, false}, {"-", 0, 0, false}, {"1e5", 0, 0, false}, {"0x1p3", 0, 0, false}, {"1.2.3", 0, 0, false},
		{"--1", 0, 0, false}, {"na", 0, 0, false}, {"-nan(", 0, 0, false}, {"1_0", 0, 0, false},
	} {
		v, dec, ok := parseLogFloat(c.s)
		if ok != c.ok || dec != c.dec || !(v == c.v || math.IsNaN(v) && math.IsNaN(c.v)) {
			t.Errorf("parseLogFloat(%q) = %v, %d, %v; want %v, %d, %v", c.s, v, dec, ok, c.v, c.dec, c.ok)
		}
	}
}

func FuzzLog(f *testing.F) {
	old := readTestdata(f, "evalcb-old-snippet.log")
	f.Add(old[:3000])
	f.Add(readTestdata(f, "evalcb-snippet.log")[:2500])
	for _, v := range variants(old[:2000]) {
		f.Add(v)
	}
	f.Add([]byte("ggml_debug: a = (f32) ADD(x{2, 1, 1, 1}, }) = {2, 1, 1, 1}\n[\n[\n[nan, -inf],\n],\n]\nsum = nan\n"))
	f.Add([]byte("common_debug_cb_eval: a = (f16) X(, }) = {9, 9, 1, 2}\n[\n[\n[1, 2, ..., 3, 4],\n...,\n],\n]\nsum = 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLog(bytes.NewReader(b), "fuzz")
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not match ErrFormat", err)
			}
			return
		}
		keys := map[string]bool{}
		for _, tt := range l.Tensors {
			if keys[tt.Key] {
				t.Fatalf("duplicate key %q", tt.Key)
			}
			keys[tt.Key] = true
			if tt.EndOffset > int64(len(b)) {
				t.Fatalf("%s ends at %d beyond %d", tt.Key, tt.EndOffset, len(b))
			}
			p := tt.Partial
			if p == nil {
				continue
			}
			n := tensor.Numel(tt.Ne)
			if len(p.Index) != len(p.Values) {
				t.Fatalf("%s: %d indices, %d values", tt.Key, len(p.Index), len(p.Values))
			}
			for i, idx := range p.Index {
				if idx < 0 || idx >= n || i > 0 && idx <= p.Index[i-1] {
					t.Fatalf("%s: index %d = %d out of order or range (numel %d)", tt.Key, i, idx, n)
				}
			}
		}
		_ = l.Describe()
		for _, n := range l.Nodes() {
			if _, err := l.Load(n.Key); err != nil && !errors.Is(err, ErrNoData) {
				t.Fatal(err)
			}
		}
	})
}

func TestLogShapes(t *testing.T) {
	log := strings.Join([]string{
		// ne3 = 2: two blocks, each followed by the (total) sum.
		"common_debug_cb_eval:                        a = (f32)        ADD(x{2, 1, 1, 2}, }) = {2, 1, 1, 2}",
		"    [", "        [", "            [      1.0000,      2.0000  ],", "        ],", "    ]", "    sum = 10.000000",
		"    [", "        [", "            [      3.0000,      4.0000  ],", "        ],", "    ]", "    sum = 10.000000",
		// An empty row.
		"common_debug_cb_eval:                        e = (f32)        ADD(x{0, 1, 1, 1}, }) = {0, 1, 1, 1}",
		"    [", "        [", "            [  ],", "        ],", "    ]", "    sum = 0.000000",
		// ne3 = 0: no block at all.
		"common_debug_cb_eval:                        z = (f32)        ADD(x{2, 1, 1, 0}, }) = {2, 1, 1, 0}",
		// ne1 = 8 > 6: rows elided, ne0 = 7: values elided.
		"common_debug_cb_eval:                        r = (f32)        ADD(x{7, 8, 1, 1}, }) = {7, 8, 1, 1}",
		"    [", "        [",
		"            [      1.0000,      2.0000,      3.0000,    ...,       5.0000,       6.0000,       7.0000  ],",
		"            [      1.0000,      2.0000,      3.0000,    ...,       5.0000,       6.0000,       7.0000  ],",
		"            [      1.0000,      2.0000,      3.0000,    ...,       5.0000,       6.0000,       7.0000  ],",
		"            ..., ",
		"            [      1.0000,      2.0000,      3.0000,    ...,       5.0000,       6.0000,       7.0000  ],",
		"            [      1.0000,      2.0000,      3.0000,    ...,       5.0000,       6.0000,       7.0000  ],",
		"            [      1.0000,      2.0000,      3.0000,    ...,       5.0000,       6.0000,       7.0000  ],",
		"        ],", "    ]", "    sum = 224.000000",
		"result_output stands in for the end of the log",
	}, "\n") + "\n"
	l := parse(t, []byte(log), "shapes.log")
	if len(l.Tensors) != 4 || len(l.Warnings) != 0 {
		t.Fatalf("%d tensors, warnings %q", len(l.Tensors), l.Warnings)
	}
	a := l.Tensors[0].Partial
	if !reflect.DeepEqual(a.Index, []int64{0, 1, 2, 3}) || !reflect.DeepEqual(a.Values, []float64{1, 2, 3, 4}) || a.Sum != 10 {
		t.Errorf("a: %+v", a)
	}
	if e := l.Tensors[1].Partial; e == nil || len(e.Index) != 0 || e.Sum != 0 || !e.HasSum {
		t.Errorf("e: %+v", e)
	}
	if z := l.Tensors[2]; z.Partial == nil || len(z.Partial.Index) != 0 || z.Partial.HasSum {
		t.Errorf("z: %+v", z.Partial)
	}
	r := l.Tensors[3].Partial
	want := []int64{0, 1, 2, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 18, 19, 20, 35, 36, 37, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 53, 54, 55}
	if !reflect.DeepEqual(r.Index, want) || r.Values[3] != 5 {
		t.Errorf("r: %v", r.Index)
	}
}

func TestLogLongLine(t *testing.T) {
	defer func(n int) { maxLogLine = n }(maxLogLine)
	maxLogLine = 64
	data := readTestdata(t, "evalcb-snippet.log")
	long := strings.Repeat("x", 70000) + "\n"
	// A long garbage line between tensors is skipped; offsets and line
	// numbers stay right.
	in := append([]byte(long), data...)
	l := parse(t, in, "long.log")
	ref := parse(t, data, "ref.log")
	if len(l.Tensors) != 12 || l.Tensors[0].Line != ref.Tensors[0].Line+1 || l.Tensors[3].EndOffset != ref.Tensors[3].EndOffset+int64(len(long)) {
		t.Errorf("after a long line: %d tensors, line %d, warnings %q", len(l.Tensors), l.Tensors[0].Line, l.Warnings)
	}
	if len(l.Warnings) == 0 || !strings.Contains(l.Warnings[0], "long.log:1: skipping line: line longer than 64 bytes") {
		t.Errorf("warnings %q", l.Warnings)
	}
}
