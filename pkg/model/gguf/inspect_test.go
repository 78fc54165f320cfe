package gguf

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// checkGolden compares got with testdata/gguf/name, or rewrites the file
// with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "gguf", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff lists the lines that differ between want and got, up to 20.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(w), len(g)) && n < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n- " + wl + "\n+ " + gl + "\n")
			n++
		}
	}
	return b.String()
}

// inspectSample is a small file that shows every feature of the report:
// all value types, an array longer than InspectMaxItems, nested arrays,
// non-finite floats, a long string, a key needing quotes, and tensors of
// several types.
func inspectSample(t *testing.T) *File {
	t.Helper()
	long := make([]int32, 100)
	for i := range long {
		long[i] = int32(i * i)
	}
	kvs := append(allTypesKVs(),
		NewKV("long.i32", long),
		NewKV("long.str", strings.Repeat("{% for message in messages %}", 10)),
		NewKV("special.f32", []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0.1}),
		NewKV("special.f64", math.NaN()),
		NewKV("odd\tkey", uint8(1)),
	)
	var buf bytes.Buffer
	if err := Write(&buf, kvs, randomTensors(3), 64); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "sample.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func renderBoth(t *testing.T, r *InspectReport) (text, js []byte) {
	t.Helper()
	var tb, jb bytes.Buffer
	if err := r.WriteText(&tb); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(jb.Bytes()) {
		t.Fatalf("invalid JSON:\n%s", jb.Bytes())
	}
	return tb.Bytes(), jb.Bytes()
}

func TestInspectGolden(t *testing.T) {
	r := Inspect(inspectSample(t))
	text, js := renderBoth(t, r)
	checkGolden(t, "inspect-sample.txt", text)
	checkGolden(t, "inspect-sample.json", js)
}

func TestInspectReport(t *testing.T) {
	f := inspectSample(t)
	r := Inspect(f)
	if r.Version != 3 || r.Alignment != 64 || r.Architecture != "llama" || r.Size != f.Size || r.DataOffset != f.DataOffset {
		t.Errorf("header: %+v", r)
	}
	if len(r.Metadata) != len(f.KVs) || len(r.Tensors) != len(f.Tensors) {
		t.Fatalf("%d metadata rows, %d tensor rows; want %d, %d", len(r.Metadata), len(r.Tensors), len(f.KVs), len(f.Tensors))
	}
	var long *InspectArray
	for _, kv := range r.Metadata {
		if kv.Key == "long.i32" {
			long = kv.Value.(*InspectArray)
		}
	}
	want := &InspectArray{Elem: "i32", Len: 100, Items: []any{int32(0), int32(1), int32(4), int32(9), int32(16), int32(25), int32(36), int32(49)}, Truncated: true}
	if !reflect.DeepEqual(long, want) {
		t.Errorf("long.i32 summary %+v, want %+v", long, want)
	}
	// Totals add up, per type and overall, and follow the type enum order.
	var sum InspectTotal
	for i, tot := range r.Totals {
		if i > 0 {
			a, _ := quant.ParseType(r.Totals[i-1].Type)
			b, _ := quant.ParseType(tot.Type)
			if a >= b {
				t.Errorf("totals out of order: %s before %s", r.Totals[i-1].Type, tot.Type)
			}
		}
		var c InspectTotal
		for _, tr := range r.Tensors {
			if tr.Type == tot.Type {
				c.Count++
				c.Elements += tr.Elements
				c.Bytes += tr.Size
			}
		}
		if c.Count != tot.Count || c.Elements != tot.Elements || c.Bytes != tot.Bytes {
			t.Errorf("total for %s: %+v, tensors sum to %+v", tot.Type, tot, c)
		}
		sum.Count += tot.Count
		sum.Elements += tot.Elements
		sum.Bytes += tot.Bytes
	}
	sum.Type = "all"
	if sum != r.Total {
		t.Errorf("total %+v, per-type totals sum to %+v", r.Total, sum)
	}
	for i, tr := range r.Tensors {
		if tr.FileOffset != f.DataOffset+int64(tr.Offset) || tr.FileOffset%64 != 0 {
			t.Errorf("tensor %d: file offset %d, offset %d, data offset %d", i, tr.FileOffset, tr.Offset, f.DataOffset)
		}
	}

	// The JSON contract: these top-level fields, and per tensor these.
	_, js := renderBoth(t, r)
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"file", "size", "version", "alignment", "data_offset", "architecture", "metadata", "tensors", "totals", "total"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if len(doc) != 10 {
		t.Errorf("JSON has %d top-level fields, want 10 (update docs/inspect-json.md when adding one)", len(doc))
	}
	tensor := doc["tensors"].([]any)[0].(map[string]any)
	for _, k := range []string{"index", "name", "type", "ne", "elements", "offset", "file_offset", "size"} {
		if _, ok := tensor[k]; !ok {
			t.Errorf("JSON tensor lacks %q", k)
		}
	}
	specials := map[string]any{}
	for _, m := range doc["metadata"].([]any) {
		m := m.(map[string]any)
		specials[m["key"].(string)] = m["value"]
	}
	if got := specials["special.f64"]; got != "NaN" {
		t.Errorf("NaN f64 encoded as %v", got)
	}
	items := specials["special.f32"].(map[string]any)["items"].([]any)
	if !reflect.DeepEqual(items, []any{"NaN", "+Inf", "-Inf", 0.1}) {
		t.Errorf("special f32 items %v", items)
	}
}

// TestInspectEmpty checks a file with no metadata and no tensors renders.
func TestInspectEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "empty.gguf")
	if err != nil {
		t.Fatal(err)
	}
	text, js := renderBoth(t, Inspect(f))
	for _, want := range []string{"architecture: (none)", "metadata: 0 keys", "tensors: 0"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{`"metadata": []`, `"tensors": []`, `"totals": []`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %q:\n%s", want, js)
		}
	}
}

// TestInspectShared inspects the shared vocab files and the 2-layer Q8_0
// llama, with golden files for the latter.
func TestInspectShared(t *testing.T) {
	t.Run("vocab", func(t *testing.T) {
		f, err := Open(sharedFile(t, "vocab/ggml-vocab-llama-spm.gguf"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r := Inspect(f)
		if len(r.Metadata) != 22 || len(r.Tensors) != 0 || r.Total.Count != 0 {
			t.Errorf("%d metadata rows, %d tensors", len(r.Metadata), len(r.Tensors))
		}
		for _, kv := range r.Metadata {
			if kv.Key == "tokenizer.ggml.tokens" {
				a := kv.Value.(*InspectArray)
				if a.Elem != "str" || a.Len != 32000 || len(a.Items) != InspectMaxItems || !a.Truncated || a.Items[0] != "<unk>" {
					t.Errorf("tokens summary %+v", a)
				}
			}
		}
		renderBoth(t, r)
	})
	t.Run("S-Q8_0", func(t *testing.T) {
		f, err := Open(sharedFile(t, "llamacpp/S-Q8_0.gguf"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r := Inspect(f)
		r.File = "S-Q8_0.gguf" // the golden files must not depend on where shared/ is
		want := []InspectTotal{
			{Type: "f32", Count: 5, Elements: 5 * 64, Bytes: 5 * 256},
			{Type: "q8_0", Count: 16, Elements: 2*64*32000 + 2*(2*64*64+2*64*32+3*64*128), Bytes: (2*64*32000 + 2*(2*64*64+2*64*32+3*64*128)) / 32 * 34},
		}
		if !reflect.DeepEqual(r.Totals, want) {
			t.Errorf("totals %+v, want %+v", r.Totals, want)
		}
		if last := r.Tensors[len(r.Tensors)-1]; last.FileOffset+last.Size > r.Size {
			t.Errorf("last tensor ends at %d, past the file's %d bytes", last.FileOffset+last.Size, r.Size)
		}
		text, js := renderBoth(t, r)
		checkGolden(t, "inspect-S-Q8_0.txt", text)
		checkGolden(t, "inspect-S-Q8_0.json", js)
	})
}
