//go:build llamacpp

package cdump_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/reference/cdump"
)

// sharedFile returns the path of name inside the read-only shared directory
// (a sibling "shared" of some ancestor of the test directory), or "".
func sharedFile(name string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, "shared", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
	fixtureSkip string
)

// fixtureModels returns a fixture LLaMA model in F32 and its Q8_0
// quantization by llama.cpp, generated once per test binary.
func fixtureModels(t *testing.T) (f32, q8 string) {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "cdump-fixture-")
		if fixtureErr != nil {
			return
		}
		f32 := filepath.Join(fixtureDir, "llama-f32.gguf")
		cfg := fixture.Default("llama")
		err := fixture.Generate(cfg, f32)
		if err != nil && strings.Contains(err.Error(), "vocabulary") {
			// No built-in vocabulary: borrow llama.cpp's SentencePiece one.
			vp := sharedFile("vocab/ggml-vocab-llama-spm.gguf")
			if vp == "" {
				fixtureSkip = "fixture needs a vocabulary: " + err.Error()
				return
			}
			vf, verr := gguf.Open(vp)
			if verr != nil {
				fixtureErr = verr
				return
			}
			defer vf.Close()
			cfg.Vocab = vf
			err = fixture.Generate(cfg, f32)
		}
		if err != nil {
			fixtureErr = err
			return
		}
		fixtureErr = llamacpp.QuantizeModel(f32, filepath.Join(fixtureDir, "llama-q8_0.gguf"), 7, 2)
	})
	if fixtureSkip != "" {
		t.Skip(fixtureSkip)
	}
	if fixtureErr != nil {
		t.Fatalf("fixture: %v", fixtureErr)
	}
	return filepath.Join(fixtureDir, "llama-f32.gguf"), filepath.Join(fixtureDir, "llama-q8_0.gguf")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// dumpCase is one run of both dumpers.
type dumpCase struct {
	name      string
	model     string // "fixture-f32", "fixture-q8_0" or "shared"
	prompt    string
	tokens    []int32
	noBOS     bool
	flashAttn string // "" = default (auto)
	kvType    string // "" = default (f16)
}

func (c dumpCase) modelPath(t *testing.T) string {
	t.Helper()
	switch c.model {
	case "shared":
		p := sharedFile("llamacpp/S-Q8_0.gguf")
		if p == "" {
			t.Skip("shared/llamacpp/S-Q8_0.gguf not present")
		}
		return p
	case "fixture-f32":
		f32, _ := fixtureModels(t)
		return f32
	default:
		_, q8 := fixtureModels(t)
		return q8
	}
}

// args is the C dumper's command line for the case.
func (c dumpCase) args(model, out string) []string {
	a := []string{"layerdiff-dump", "-m", model, "-o", out, "--threads", "2"}
	if c.tokens != nil {
		ids := make([]string, len(c.tokens))
		for i, t := range c.tokens {
			ids[i] = fmt.Sprint(t)
		}
		a = append(a, "-t", strings.Join(ids, ","))
	} else {
		a = append(a, "-p", c.prompt)
	}
	if c.noBOS {
		a = append(a, "--no-bos")
	}
	if c.flashAttn != "" {
		a = append(a, "--fa", c.flashAttn)
	}
	if c.kvType != "" {
		a = append(a, "--kv-type", c.kvType)
	}
	return a
}

var dumpCases = []dumpCase{
	{name: "shared/prompt", model: "shared", prompt: "Hello world, this is a test"},
	{name: "shared/tokens/fa-off", model: "shared", tokens: []int32{1, 15043, 3186, 29892, 445}, flashAttn: "off"},
	{name: "q8_0/prompt", model: "fixture-q8_0", prompt: "Hello world, this is a test"},
	{name: "q8_0/no-bos/fa-off", model: "fixture-q8_0", prompt: "The quick brown fox", noBOS: true, flashAttn: "off"},
	{name: "q8_0/tokens/fa-on/kv-f32", model: "fixture-q8_0", tokens: []int32{1, 45, 99, 173, 170, 299}, flashAttn: "on", kvType: "f32"},
	{name: "f32/tokens/fa-off/kv-f32", model: "fixture-f32", tokens: []int32{1, 150}, flashAttn: "off", kvType: "f32"},
	{name: "f32/one-token", model: "fixture-f32", tokens: []int32{1}},
}

// TestSameAsGoDumper runs the C dumper and layerdiff's own dumper
// (reference.DumpLlamaCpp) on the same model, tokens and settings, and
// checks that the two dumps are the same: identical run fields (but the
// creation time and the tool version), identical nodes (keys, names, ops,
// sources, types, shapes, views, files, data_of, statistics to the bit),
// byte-identical .npy files, and no other files; and that reference.OpenDump
// reads the C dump and every node's values load.
func TestSameAsGoDumper(t *testing.T) {
	for _, c := range dumpCases {
		t.Run(c.name, func(t *testing.T) {
			modelPath := c.modelPath(t)
			dir := t.TempDir()
			cOut, goOut := filepath.Join(dir, "c"), filepath.Join(dir, "go")
			if rc := cdump.Main(c.args(modelPath, cOut)...); rc != 0 {
				t.Fatalf("C dumper exited with %d", rc)
			}
			_, err := reference.DumpLlamaCpp(reference.DumpOptions{
				Model: modelPath, Prompt: c.prompt, Tokens: c.tokens, NoBOS: c.noBOS, Out: goOut,
				FlashAttn: c.flashAttn, KVType: c.kvType, Threads: 2, Version: "test",
			})
			if err != nil {
				t.Fatal(err)
			}
			cm, err := reference.ReadManifest(cOut)
			if err != nil {
				t.Fatalf("C dump: %v", err)
			}
			gm, err := reference.ReadManifest(goOut)
			if err != nil {
				t.Fatal(err)
			}
			compareRun(t, cm, gm)
			compareNodes(t, cm, gm)
			compareFiles(t, cOut, goOut, cm)
			compareLoads(t, cOut, goOut, gm)
			if entries, _ := os.ReadDir(dir); len(entries) != 2 {
				t.Errorf("%s holds %d entries, want the 2 dumps (a temporary directory left behind?)", dir, len(entries))
			}
		})
	}
}

func compareRun(t *testing.T, cm, gm *reference.Manifest) {
	t.Helper()
	if cm.LayerdiffVersion != cdump.ToolVersion {
		t.Errorf("layerdiff_version %q, want %q", cm.LayerdiffVersion, cdump.ToolVersion)
	}
	if _, err := time.Parse(time.RFC3339, cm.Created); err != nil {
		t.Errorf("created %q: %v", cm.Created, err)
	}
	if len(cm.Tokens) == 0 || cm.FlashAttn == "" || len(cm.Model.HParams) == 0 || cm.ExtraBufts == nil {
		t.Errorf("C manifest lacks tokens, flash_attn, hparams or extra_bufts: %+v", cm)
	}
	c, g := *cm, *gm
	c.Nodes, g.Nodes = nil, nil
	c.Created, g.Created = "", ""
	c.LayerdiffVersion, g.LayerdiffVersion = "", ""
	if !reflect.DeepEqual(c, g) {
		cj, _ := json.MarshalIndent(c, "", "  ")
		gj, _ := json.MarshalIndent(g, "", "  ")
		t.Errorf("run fields differ:\nC:  %s\nGo: %s", cj, gj)
	}
}

// sameFloat compares floats bit for bit (any NaN equals any NaN).
func sameFloat(a, b reference.Float) bool {
	if math.IsNaN(float64(a)) || math.IsNaN(float64(b)) {
		return math.IsNaN(float64(a)) && math.IsNaN(float64(b))
	}
	return math.Float64bits(float64(a)) == math.Float64bits(float64(b))
}

func compareNodes(t *testing.T, cm, gm *reference.Manifest) {
	t.Helper()
	if len(cm.Nodes) != len(gm.Nodes) {
		t.Fatalf("C dump has %d nodes, Go dump %d", len(cm.Nodes), len(gm.Nodes))
	}
	bad := 0
	for i := range gm.Nodes {
		c, g := cm.Nodes[i], gm.Nodes[i]
		cs, gs := c.Stats, g.Stats
		c.Stats, g.Stats = nil, nil
		same := reflect.DeepEqual(c, g)
		switch {
		case (cs == nil) != (gs == nil):
			same = false
		case cs != nil:
			same = same && sameFloat(cs.Sum, gs.Sum) && sameFloat(cs.Min, gs.Min) && sameFloat(cs.Max, gs.Max) && cs.NaN == gs.NaN && cs.Inf == gs.Inf
		}
		if !same {
			c.Stats, g.Stats = cs, gs
			cj, _ := json.Marshal(c)
			gj, _ := json.Marshal(g)
			t.Errorf("node %d differs:\nC:  %s\nGo: %s", i, cj, gj)
			if bad++; bad == 5 {
				t.FailNow()
			}
		}
	}
	stored, views := 0, 0
	for _, n := range cm.Nodes {
		if n.File != "" {
			stored++
		}
		if n.DataOf != "" {
			views++
		}
	}
	if stored == 0 || views == 0 {
		t.Errorf("%d stored nodes and %d data_of nodes: expected both kinds", stored, views)
	}
}

// compareFiles checks that both dump directories hold exactly the manifest
// and the files it names, and that each .npy file is byte-identical.
func compareFiles(t *testing.T, cDir, goDir string, m *reference.Manifest) {
	t.Helper()
	want := []string{reference.ManifestFile}
	for _, n := range m.Nodes {
		if n.File != "" {
			want = append(want, n.File)
		}
	}
	sort.Strings(want)
	for _, dir := range []string{cDir, goDir} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s holds %d entries, the manifest names %d files (+ manifest.json)", dir, len(got), len(want)-1)
		}
	}
	for _, name := range want[1:] {
		if name == reference.ManifestFile {
			continue
		}
		cb, err := os.ReadFile(filepath.Join(cDir, name))
		if err != nil {
			t.Fatal(err)
		}
		gb, err := os.ReadFile(filepath.Join(goDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cb, gb) {
			t.Errorf("%s: C and Go files differ (%d and %d bytes)", name, len(cb), len(gb))
		}
	}
}

// compareLoads opens the C dump with reference.OpenDump and checks that
// every node with values loads and equals the Go dump's, bit for bit.
func compareLoads(t *testing.T, cDir, goDir string, gm *reference.Manifest) {
	t.Helper()
	cd, err := reference.OpenDump(cDir)
	if err != nil {
		t.Fatalf("OpenDump(C dump): %v", err)
	}
	gd, err := reference.OpenDump(goDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range gm.Nodes {
		if n.File == "" && n.DataOf == "" {
			continue
		}
		ct, err := cd.Load(n.Key)
		if err != nil {
			t.Fatalf("C dump: %v", err)
		}
		gt, err := gd.Load(n.Key)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct.Data) != len(gt.Data) {
			t.Fatalf("%s: %d values in the C dump, %d in the Go dump", n.Key, len(ct.Data), len(gt.Data))
		}
		for i := range gt.Data {
			if math.Float32bits(ct.Data[i]) != math.Float32bits(gt.Data[i]) {
				t.Fatalf("%s[%d]: C %v, Go %v", n.Key, i, ct.Data[i], gt.Data[i])
			}
		}
	}
}

// TestUsage checks the exit status of bad and help command lines; none of
// them creates the output directory.
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"help", []string{"-h"}, 0},
		{"long help", []string{"--help"}, 0},
		{"nothing", nil, 2},
		{"no out", []string{"-m", "x.gguf", "-p", "hi"}, 2},
		{"no prompt", []string{"-m", "x.gguf", "-o", out}, 2},
		{"prompt and tokens", []string{"-m", "x.gguf", "-o", out, "-p", "hi", "-t", "1"}, 2},
		{"bad fa", []string{"-m", "x.gguf", "-o", out, "-p", "hi", "--fa", "maybe"}, 2},
		{"bad fa=", []string{"-m", "x.gguf", "-o", out, "-p", "hi", "--flash-attn=yes"}, 2},
		{"bad kv", []string{"-m", "x.gguf", "-o", out, "-p", "hi", "--kv-type", "q8_0"}, 2},
		{"bad threads", []string{"-m", "x.gguf", "-o", out, "-p", "hi", "--threads", "0"}, 2},
		{"bad ngl", []string{"-m", "x.gguf", "-o", out, "-p", "hi", "-ngl", "many"}, 2},
		{"missing value", []string{"-m", "x.gguf", "-o", out, "-p"}, 2},
		{"unknown", []string{"-m", "x.gguf", "-o", out, "-p", "hi", "--batch", "4"}, 2},
		{"flag with value", []string{"-m", "x.gguf", "-o", out, "-p", "hi", "--force=yes"}, 2},
		{"out is dot", []string{"-m", "x.gguf", "-o", ".", "-p", "hi"}, 2},
		{"out is root", []string{"-m", "x.gguf", "-o", "/", "-p", "hi"}, 2},
		{"out is dotdot", []string{"-m", "x.gguf", "-o", "a/..", "-p", "hi"}, 2},
		{"missing model", []string{"-m", filepath.Join(dir, "none.gguf"), "-o", out, "-p", "hi"}, 1},
		{"bad token list", []string{"-m", "x.gguf", "-o", out, "-t", "1,,2"}, 2},
		{"bad token", []string{"-m", "x.gguf", "-o", out, "-t", "1,x"}, 2},
		{"token overflow", []string{"-m", "x.gguf", "-o", out, "-t", "4294967296"}, 2},
		{"empty token list", []string{"-m", "x.gguf", "-o", out, "-t", ""}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cdump.Main(append([]string{"layerdiff-dump"}, tt.args...)...); got != tt.want {
				t.Errorf("exit status %d, want %d", got, tt.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s was created", out)
			}
		})
	}
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestOutputDirectory checks that failures leave nothing behind, that an
// existing dump is only replaced under --force, and that a trailing slash
// and missing parents are handled.
func TestOutputDirectory(t *testing.T) {
	modelPath := dumpCase{model: "fixture-q8_0"}.modelPath(t)
	run := func(out string, extra ...string) int {
		return cdump.Main(append([]string{"layerdiff-dump", "-m", modelPath, "-o", out, "--threads", "2", "-t", "1,45,99"}, extra...)...)
	}
	dir := t.TempDir()

	// A token outside the vocabulary fails before anything is written.
	out := filepath.Join(dir, "bad")
	if rc := cdump.Main("layerdiff-dump", "-m", modelPath, "-o", out, "-t", "1,99999999"); rc != 1 {
		t.Errorf("token outside the vocabulary: exit %d, want 1", rc)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("failed run left %v", names)
	}

	// A new directory with missing parents and a trailing slash.
	out = filepath.Join(dir, "a", "b", "dump")
	if rc := run(out + "/"); rc != 0 {
		t.Fatalf("exit %d", rc)
	}
	if _, err := reference.OpenDump(out); err != nil {
		t.Fatal(err)
	}
	if names := listDir(t, filepath.Join(dir, "a", "b")); !reflect.DeepEqual(names, []string{"dump"}) {
		t.Errorf("beside the dump: %v", names)
	}

	// An existing dump is refused without --force and left as it was.
	before, err := os.ReadFile(filepath.Join(out, reference.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if rc := run(out); rc != 1 {
		t.Errorf("existing dump without --force: exit %d, want 1", rc)
	}
	after, err := os.ReadFile(filepath.Join(out, reference.ManifestFile))
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("existing dump changed without --force (%v)", err)
	}

	// With --force it is replaced, extra files of the old one included.
	if err := os.WriteFile(filepath.Join(out, "stale.txt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(out, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if rc := run(out, "--force"); rc != 0 {
		t.Fatalf("--force: exit %d", rc)
	}
	if _, err := os.Stat(filepath.Join(out, "stale.txt")); err == nil {
		t.Error("--force kept a file of the old dump")
	}
	if names := listDir(t, filepath.Join(dir, "a", "b")); !reflect.DeepEqual(names, []string{"dump"}) {
		t.Errorf("beside the replaced dump: %v", names)
	}

	// An empty existing directory is used without --force.
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if rc := run(empty); rc != 0 {
		t.Fatalf("empty directory: exit %d", rc)
	}
	if _, err := reference.OpenDump(empty); err != nil {
		t.Fatal(err)
	}

	// A file in the way is never replaced.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rc := run(file, "--force"); rc != 1 {
		t.Errorf("file in the way: exit %d, want 1", rc)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "x" {
		t.Errorf("file in the way was changed")
	}
}

// TestFileSHA256 holds the C SHA-256 against crypto/sha256 on every length
// around the 64-byte block and padding boundaries.
func TestFileSHA256(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{}
	for n := 0; n <= 300; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 1<<20-1, 1<<20, 1<<20+1, 3<<20+55)
	for _, n := range lengths {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, size, err := cdump.FileSHA256(p)
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(data)
		if got != hex.EncodeToString(want[:]) || size != int64(n) {
			t.Fatalf("%d bytes: got %s (%d), want %x", n, got, size, want)
		}
	}
	if _, _, err := cdump.FileSHA256(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

var fileNameKeys = []string{
	"embd", "Qcur-0#2", "Qcur-0 (view) (permuted)", "cache_k_l0 (view)#3", "a/b\\c:d", "x@7",
	"héllo", "日本語-ß", "\xff\xfe", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\xf0\x9f\x98\x80!",
	strings.Repeat("a", 95) + "éb", strings.Repeat("x", 200), strings.Repeat("é", 120), "",
}

// TestNodeFileName holds the C file names against reference.NodeFileName.
func TestNodeFileName(t *testing.T) {
	for i, key := range fileNameKeys {
		for _, index := range []int{0, 7, 9999, 10000, 123456} {
			got, err := cdump.NodeFileName(index, key)
			if err != nil {
				t.Fatal(err)
			}
			if want := reference.NodeFileName(index, key); got != want {
				t.Errorf("key %d %q index %d: C %q, Go %q", i, key, index, got, want)
			}
		}
	}
}

func FuzzNodeFileName(f *testing.F) {
	for _, k := range fileNameKeys {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if strings.IndexByte(key, 0) >= 0 {
			t.Skip("ggml names cannot hold NUL")
		}
		got, err := cdump.NodeFileName(42, key)
		if err != nil {
			t.Fatal(err)
		}
		if want := reference.NodeFileName(42, key); got != want {
			t.Errorf("key %q: C %q, Go %q", key, got, want)
		}
	})
}

var jsonStrings = []string{
	"", "plain", `quo"te`, `back\slash`, "tab\tnew\nline\rcr", "\x01\x1f\x7f", "<&>", "\u2028\u2029",
	"héllo 日本語 😀", "\xff", "a\xc3", "\xed\xa0\x80", "\xe2\x82\xac\xe2\x82", "\xf8\x88\x80\x80\x80",
}

// checkJSONString checks that the C encoding of s is valid JSON that
// decodes to what Go's encoder makes of s (invalid UTF-8 bytes become
// U+FFFD, one each).
func checkJSONString(t *testing.T, s string) {
	t.Helper()
	got, err := cdump.JSONString(s)
	if err != nil {
		t.Fatal(err)
	}
	var dec string
	if err := json.Unmarshal([]byte(got), &dec); err != nil {
		t.Fatalf("%q: C wrote %s: %v", s, got, err)
	}
	if !json.Valid([]byte(got)) || !utf8Valid(got) {
		t.Fatalf("%q: C wrote invalid JSON %q", s, got)
	}
	gb, _ := json.Marshal(s)
	var want string
	if err := json.Unmarshal(gb, &want); err != nil {
		t.Fatal(err)
	}
	if dec != want {
		t.Errorf("%q: C JSON decodes to %q, Go's to %q", s, dec, want)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestJSONString(t *testing.T) {
	for _, s := range jsonStrings {
		checkJSONString(t, s)
	}
}

func FuzzJSONString(f *testing.F) {
	for _, s := range jsonStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			t.Skip("C strings cannot hold NUL")
		}
		checkJSONString(t, s)
	})
}

// checkFloat64 checks that the C text of v reads back (as reference.Float)
// as exactly v, and is no longer than Go's shortest form.
func checkFloat64(t *testing.T, v float64) {
	t.Helper()
	got, err := cdump.JSONFloat64(v)
	if err != nil {
		t.Fatal(err)
	}
	var f reference.Float
	if err := json.Unmarshal([]byte(got), &f); err != nil {
		t.Fatalf("%v: C wrote %s: %v", v, got, err)
	}
	if !sameFloat(f, reference.Float(v)) {
		t.Errorf("%v (%#x): C wrote %s, which reads as %v", v, math.Float64bits(v), got, float64(f))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	want, _ := json.Marshal(reference.Float(v))
	if digits(got) > digits(string(want)) {
		t.Errorf("%v: C wrote %s, longer than Go's %s", v, got, want)
	}
	// In encoding/json's fixed-notation range the text is Go's, digit for digit.
	if a := math.Abs(v); a >= 1e-6 && a < 1e21 || v == 0 {
		if jb, _ := json.Marshal(v); got != string(jb) {
			t.Errorf("%v: C wrote %s, encoding/json %s", v, got, jb)
		}
	}
}

// digits counts the significant digits of a JSON number.
func digits(s string) int {
	mant, _, _ := strings.Cut(strings.ToLower(s), "e")
	mant = strings.TrimLeft(strings.ReplaceAll(strings.TrimPrefix(mant, "-"), ".", ""), "0")
	return len(strings.TrimRight(mant, "0"))
}

// checkFloat32 checks that the C text of v reads, as a float64, exactly as
// Go's encoding/json text of the float32 v does (hparams are float32).
func checkFloat32(t *testing.T, v float32) {
	t.Helper()
	got, err := cdump.JSONFloat32(v)
	if err != nil {
		t.Fatal(err)
	}
	var c any
	if err := json.Unmarshal([]byte(got), &c); err != nil {
		t.Fatalf("%v: C wrote %s: %v", v, got, err)
	}
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return // encoding/json refuses these; C writes the strings of reference.Float
	}
	gb, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var g any
	if err := json.Unmarshal(gb, &g); err != nil {
		t.Fatal(err)
	}
	if c != g {
		t.Errorf("float32 %v (%#x): C wrote %s, Go %s", v, math.Float32bits(v), got, gb)
	}
	if a := math.Abs(float64(v)); (a >= 1e-6 && a < 1e21 || v == 0) && got != string(gb) {
		t.Errorf("float32 %v: C wrote %s, encoding/json %s", v, got, gb)
	}
}

func TestJSONFloats(t *testing.T) {
	specials := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-5, 1e21, 1e-7, 123456789, math.MaxFloat64,
		math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 59.455322265625, float64(float32(0.1))}
	for _, v := range specials {
		checkFloat64(t, v)
		checkFloat32(t, float32(v))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		checkFloat64(t, math.Float64frombits(rng.Uint64()))
		f := math.Float32frombits(rng.Uint32())
		checkFloat32(t, f)
		checkFloat64(t, float64(f)) // statistics are float32 values widened
	}
}

func FuzzJSONFloat(f *testing.F) {
	f.Add(uint64(0), uint32(0))
	f.Add(math.Float64bits(0.1), math.Float32bits(1e-5))
	f.Fuzz(func(t *testing.T, b64 uint64, b32 uint32) {
		checkFloat64(t, math.Float64frombits(b64))
		checkFloat32(t, math.Float32frombits(b32))
	})
}

// TestNPYHeader holds the C .npy headers against the Go writer's, for the
// dtypes and shapes the dumper writes.
func TestNPYHeader(t *testing.T) {
	dir := t.TempDir()
	shapes := [][4]int64{{64, 8, 1, 1}, {32000, 1, 1, 1}, {1, 1, 1, 1}, {16, 4, 8, 1}, {3, 1, 2, 1}, {2, 3, 4, 5}, {0, 1, 1, 1}, {5, 0, 1, 1}}
	for _, descr := range []string{"<f4", "<f2", "<i4"} {
		for _, ne := range shapes {
			got, err := cdump.NPYHeader(descr, ne)
			if err != nil {
				t.Fatal(err)
			}
			n := ne[0] * ne[1] * ne[2] * ne[3]
			size := map[string]int64{"<f4": 4, "<f2": 2, "<i4": 4}[descr]
			p := filepath.Join(dir, "x.npy")
			if err := reference.WriteNPY(p, descr, reference.NPYShape(ne[:]), make([]byte, n*size)); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			want = want[:len(want)-int(n*size)]
			if !bytes.Equal(got, want) {
				t.Errorf("%s %v: C header %q, Go %q", descr, ne, got, want)
			}
		}
	}
}

// TestCompilesAsStrictC11 compiles the C file alone, as a user would, with
// the C compiler in strict C11 mode and warnings as errors (no llama.cpp
// libraries are needed for -fsyntax-only).
func TestCompilesAsStrictC11(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no cc")
	}
	args := []string{"-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Werror", "-fsyntax-only"}
	args = append(args, strings.Fields(os.Getenv("CGO_CPPFLAGS"))...)
	args = append(args, "../../../tools/llamacpp-dump/layerdiff-dump.c")
	out, err := exec.Command(cc, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
	}
}

// contiguousNb returns the byte strides of a contiguous tensor of type t.
func contiguousNb(t quant.Type, ne [4]int64) [4]uint64 {
	var nb [4]uint64
	nb[0] = uint64(t.BlockBytes())
	nb[1] = nb[0] * uint64(ne[0]/int64(t.BlockSize()))
	nb[2] = nb[1] * uint64(ne[1])
	nb[3] = nb[2] * uint64(ne[2])
	return nb
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// TestGather holds the C gather (strided views, dtypes, conversion to
// float) against reference.GatherGGML and quant.Dequantize.
func TestGather(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	src := make([]float32, 4*256)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	t.Run("quantized", func(t *testing.T) {
		for _, typ := range []quant.Type{quant.Q8_0, quant.Q4_0, quant.Q4_K, quant.Q6_K, quant.IQ4_NL, quant.BF16, quant.F16} {
			ne := [4]int64{256, 2, 2, 1}
			data, err := llamacpp.QuantizeChunk(int(typ), src, 4, 256)
			if err != nil {
				t.Fatal(err)
			}
			descr, out, vals, err := cdump.Gather(int(typ), ne, contiguousNb(typ, ne), data)
			if err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			want := make([]float32, len(src))
			if err := quant.Dequantize(typ, data, want); err != nil {
				t.Fatal(err)
			}
			wantDescr, wantOut := "<f4", f32Bytes(want)
			if typ == quant.F16 {
				wantDescr, wantOut = "<f2", data
			}
			if descr != wantDescr || !bytes.Equal(out, wantOut) {
				t.Errorf("%s: stored %s (%d bytes), want %s (%d bytes) or different bytes", typ, descr, len(out), wantDescr, len(wantOut))
			}
			if !bytes.Equal(f32Bytes(vals), f32Bytes(want)) {
				t.Errorf("%s: values differ from quant.Dequantize", typ)
			}
		}
	})
	t.Run("views", func(t *testing.T) {
		raw := f32Bytes(src[:4*5*6])
		f16raw := make([]byte, 2*24)
		for i := range 24 {
			binary.LittleEndian.PutUint16(f16raw[2*i:], quant.F32ToF16(float32(i)-7.5))
		}
		tests := []struct {
			name  string
			typ   quant.Type
			ne    [4]int64
			nb    [4]uint64
			data  []byte
			descr string
		}{
			{"f32 contiguous", quant.F32, [4]int64{4, 5, 6, 1}, [4]uint64{4, 16, 80, 480}, raw, "<f4"},
			{"f32 permuted", quant.F32, [4]int64{4, 6, 5, 1}, [4]uint64{4, 80, 16, 480}, raw, "<f4"},
			{"f32 transposed", quant.F32, [4]int64{5, 4, 6, 1}, [4]uint64{16, 4, 80, 480}, raw, "<f4"},
			{"f32 strided rows", quant.F32, [4]int64{4, 3, 1, 1}, [4]uint64{4, 32, 96, 96}, raw, "<f4"},
			{"f32 view at offset", quant.F32, [4]int64{2, 5, 1, 1}, [4]uint64{4, 16, 80, 80}, raw[8:], "<f4"},
			{"f16 transposed", quant.F16, [4]int64{4, 6, 1, 1}, [4]uint64{12, 2, 48, 48}, f16raw, "<f2"},
			{"i32 permuted", quant.I32, [4]int64{4, 6, 5, 1}, [4]uint64{4, 80, 16, 480}, raw, "<i4"},
		}
		for _, tt := range tests {
			descr, out, vals, err := cdump.Gather(int(tt.typ), tt.ne, tt.nb, tt.data)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			want, err := reference.GatherGGML(tt.data, tt.typ.BlockBytes(), tt.ne[:], tt.nb[:])
			if err != nil {
				t.Fatal(err)
			}
			if descr != tt.descr || !bytes.Equal(out, want) {
				t.Errorf("%s: stored %s %x, want %s %x", tt.name, descr, out, tt.descr, want)
			}
			for i, v := range vals {
				var w float32
				switch tt.typ {
				case quant.F32:
					w = math.Float32frombits(binary.LittleEndian.Uint32(want[4*i:]))
				case quant.F16:
					w = quant.F16ToF32(binary.LittleEndian.Uint16(want[2*i:]))
				case quant.I32:
					w = float32(int32(binary.LittleEndian.Uint32(want[4*i:])))
				}
				if math.Float32bits(v) != math.Float32bits(w) {
					t.Fatalf("%s: value %d is %v, want %v", tt.name, i, v, w)
				}
			}
		}
	})
	t.Run("integer and f64", func(t *testing.T) {
		tests := []struct {
			typ  quant.Type
			data []byte
			want []float32
		}{
			{quant.I8, []byte{0x80, 0xff, 0, 5}, []float32{-128, -1, 0, 5}},
			{quant.I16, []byte{0x00, 0x80, 0xff, 0xff, 7, 0}, []float32{-32768, -1, 7}},
			{quant.I64, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 1<<40), math.MaxUint64), []float32{1 << 40, -1}},
			{quant.F64, binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1)), []float32{0.1}},
		}
		for _, tt := range tests {
			n := int64(len(tt.want))
			ne := [4]int64{n, 1, 1, 1}
			descr, out, vals, err := cdump.Gather(int(tt.typ), ne, contiguousNb(tt.typ, ne), tt.data)
			if err != nil {
				t.Fatalf("%s: %v", tt.typ, err)
			}
			if descr != "<f4" || !bytes.Equal(out, f32Bytes(tt.want)) || !bytes.Equal(f32Bytes(vals), f32Bytes(tt.want)) {
				t.Errorf("%s: stored %s %v, want <f4 %v", tt.typ, descr, vals, tt.want)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name string
			typ  int
			ne   [4]int64
			nb   [4]uint64
			data []byte
			want string
		}{
			{"unknown type", 1000, [4]int64{1, 1, 1, 1}, [4]uint64{4, 4, 4, 4}, make([]byte, 4), "unknown ggml type"},
			{"removed type", 4, [4]int64{32, 1, 1, 1}, [4]uint64{20, 20, 20, 20}, make([]byte, 20), "unknown ggml type"},
			{"partial block", int(quant.Q8_0), [4]int64{40, 1, 1, 1}, [4]uint64{34, 68, 68, 68}, make([]byte, 68), "block size"},
			{"row past data", int(quant.F32), [4]int64{4, 2, 1, 1}, [4]uint64{4, 16, 32, 32}, make([]byte, 20), "past the 20 bytes"},
			{"element past data", int(quant.F32), [4]int64{4, 2, 1, 1}, [4]uint64{8, 4, 32, 32}, make([]byte, 20), "past the 20 bytes"},
			{"negative dimension", int(quant.F32), [4]int64{-1, 1, 1, 1}, [4]uint64{4, 4, 4, 4}, make([]byte, 4), "negative"},
			{"overflow", int(quant.F32), [4]int64{1 << 40, 1 << 40, 1, 1}, [4]uint64{4, 4, 4, 4}, make([]byte, 4), "overflows"},
		}
		for _, tt := range tests {
			_, _, _, err := cdump.Gather(tt.typ, tt.ne, tt.nb, tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
			}
		}
	})
}

// TestComputeStats holds the C statistics against reference.ComputeStats,
// bit for bit, including NaN, infinities and the sign of zero extremes.
func TestComputeStats(t *testing.T) {
	nan, inf, negZero := float32(math.NaN()), float32(math.Inf(1)), float32(math.Copysign(0, -1))
	rng := rand.New(rand.NewPCG(7, 8))
	random := make([]float32, 10000)
	for i := range random {
		random[i] = float32(rng.NormFloat64() * 1000)
	}
	tests := [][]float32{
		nil, {1}, {nan}, {nan, nan}, {1, nan, -2}, {inf, -inf, 3}, {0, negZero}, {negZero, 0}, {negZero},
		{nan, negZero, 0, nan}, {1e30, 1e30, -1e30}, {16777216, 1, 1, 1}, random,
	}
	for _, vals := range tests {
		got := cdump.ComputeStats(vals)
		want := reference.ComputeStats(vals)
		if !sameFloat(reference.Float(got.Sum), want.Sum) || !sameFloat(reference.Float(got.Min), want.Min) ||
			!sameFloat(reference.Float(got.Max), want.Max) || got.NaN != want.NaN || got.Inf != want.Inf {
			t.Errorf("%v: C %+v, Go %+v", vals[:min(len(vals), 8)], got, want)
		}
	}
}

// goHParams is what layerdiff's dumper records as hparams (see
// reference.DumpLlamaCpp), after a JSON round trip.
func goHParams(t *testing.T, f *gguf.File) map[string]any {
	t.Helper()
	out := map[string]any{}
	arch := f.Arch()
	for _, kv := range f.KVs {
		if _, isArr := kv.Value.(gguf.Array); isArr {
			continue
		}
		if strings.HasPrefix(kv.Key, arch+".") || kv.Key == "general.file_type" {
			out[kv.Key] = kv.Value
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil // a NaN float32: encoding/json refuses it
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkHParams reads path with the C metadata reader and, when Go's GGUF
// reader accepts the file too, compares the hparams.
func checkHParams(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	obj, arch, cerr := cdump.HParamsJSON(path, st.Size())
	var got map[string]any
	if cerr == nil {
		if err := json.Unmarshal([]byte(obj), &got); err != nil {
			t.Fatalf("C hparams are not JSON: %v\n%s", err, obj)
		}
	}
	f, err := gguf.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if cerr != nil {
		t.Fatalf("C reader fails where Go's reads: %v", cerr)
	}
	if arch != f.Arch() {
		t.Errorf("architecture %q, Go %q", arch, f.Arch())
	}
	if want := goHParams(t, f); want != nil && !reflect.DeepEqual(got, want) {
		t.Errorf("hparams:\nC:  %v\nGo: %v", got, want)
	}
}

func hparamsSeed(t testing.TB) []byte {
	kvs := []gguf.KV{
		gguf.NewKV("general.architecture", "llama"),
		gguf.NewKV("general.name", "seed \"model\"\n"),
		gguf.NewKV("general.file_type", uint32(7)),
		gguf.NewKV("llama.block_count", uint32(2)),
		gguf.NewKV("llama.rope.freq_base", float32(10000)),
		gguf.NewKV("llama.attention.layer_norm_rms_epsilon", float32(1e-5)),
		gguf.NewKV("llama.i8", int8(-3)), gguf.NewKV("llama.u16", uint16(65535)), gguf.NewKV("llama.i16", int16(-300)),
		gguf.NewKV("llama.i32", int32(-70000)), gguf.NewKV("llama.u64", uint64(1)<<53), gguf.NewKV("llama.i64", int64(-1)<<40),
		gguf.NewKV("llama.f64", 0.1), gguf.NewKV("llama.flag", true), gguf.NewKV("llama.u8", uint8(200)),
		gguf.NewKV("llama.s", "héllo"), gguf.NewKV("llama.arr", []float32{1, 2}), gguf.NewKV("llama.sarr", []string{"a", "bc"}),
		gguf.NewKV("qwen2.other", uint32(1)),
	}
	p := filepath.Join(t.TempDir(), "seed.gguf")
	if err := gguf.WriteFile(p, kvs, []gguf.WriteTensor{{Name: "w", Ne: []int64{2}, Type: quant.F32, Data: make([]byte, 8)}}, 32); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHParams holds the C GGUF metadata reader against Go's on every value
// type and on the test models, and checks that cut files fail cleanly.
func TestHParams(t *testing.T) {
	seed := hparamsSeed(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "seed.gguf")
	if err := os.WriteFile(p, seed, 0o644); err != nil {
		t.Fatal(err)
	}
	checkHParams(t, p)
	obj, _, err := cdump.HParamsJSON(p, int64(len(seed)))
	if err != nil || !strings.Contains(obj, `"llama.attention.layer_norm_rms_epsilon": 0.00001`) || strings.Contains(obj, "qwen2") || strings.Contains(obj, "arr") {
		t.Errorf("seed hparams (%v):\n%s", err, obj)
	}
	// Every cut inside the metadata fails with an error, never a crash.
	for n := 0; n < len(seed)-8; n++ {
		if err := os.WriteFile(p, seed[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := cdump.HParamsJSON(p, int64(n)); err == nil && n < 200 {
			t.Errorf("cut at %d bytes: no error", n)
		}
	}
	// Random damage: no crash, and the same hparams whenever Go reads the file.
	rng := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 1000; i++ {
		b := append([]byte(nil), seed...)
		for k := 0; k < 1+rng.IntN(3); k++ {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		checkHParams(t, p)
	}
	for _, m := range []string{"fixture-q8_0", "shared"} {
		t.Run(m, func(t *testing.T) { checkHParams(t, dumpCase{model: m}.modelPath(t)) })
	}
}

func FuzzHParams(f *testing.F) {
	f.Add(hparamsSeed(f))
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.gguf")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		checkHParams(t, p)
	})
}
