package main

// End-to-end tests of hostile input and data safety: each case runs the
// layerdiff CLI (this test binary re-executed as the command, see
// TestLayerdiffProcess) on files built to be broken in one precise way, and
// checks the exit code, that the message names the file and the place, that
// the process neither panicked nor hung, and its peak memory.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
)

// cliProcessEnv makes the test binary act as the layerdiff command.
const cliProcessEnv = "LAYERDIFF_TEST_CLI_PROCESS"

// TestLayerdiffProcess is not a test: with cliProcessEnv set it runs the
// layerdiff CLI on the arguments after "--" and exits with its code. The
// other tests start this binary that way, so that panics, exit codes,
// signals and memory are those of a real process.
func TestLayerdiffProcess(t *testing.T) {
	if os.Getenv(cliProcessEnv) != "1" {
		return
	}
	os.Exit(run(append([]string{"layerdiff"}, flag.Args()...)))
}

// cliMemLimit bounds the peak resident memory of one command on hostile
// input: the inputs are a few kilobytes, so anything near this means a
// reader allocated what a header claimed instead of what the file holds.
const cliMemLimit = 256 << 20

// cliHangGuard is how long one command may run before it counts as hung
// (the commands here finish in well under a second).
const cliHangGuard = 5 * time.Minute

// cliResult is what one run of the CLI did.
type cliResult struct {
	args           []string
	code           int
	stdout, stderr string
	rss            int64 // peak resident memory in bytes, 0 if unknown
}

func (r cliResult) String() string {
	return fmt.Sprintf("layerdiff %s\nexit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cliCommand returns the command that runs layerdiff with args.
func cliCommand(t *testing.T, ctx context.Context, wrapper []string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append(append([]string{}, wrapper...), exe, "-test.run=^TestLayerdiffProcess$", "--"), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), cliProcessEnv+"=1", "NO_COLOR=1")
	return cmd
}

// layerdiff runs the CLI in a child process and checks that it neither
// crashed nor hung.
func layerdiff(t *testing.T, args ...string) cliResult {
	t.Helper()
	return layerdiffWrapped(t, nil, args...)
}

// layerdiffWrapped is layerdiff run through wrapper (e.g. a shell that sets
// a resource limit first).
func layerdiffWrapped(t *testing.T, wrapper []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliHangGuard)
	defer cancel()
	cmd := cliCommand(t, ctx, wrapper, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("hung: killed after %v\n%s", cliHangGuard, r)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("layerdiff %s: %v", strings.Join(args, " "), err)
	}
	r.code = cmd.ProcessState.ExitCode()
	r.rss = peakRSS(cmd.ProcessState)
	checkNoCrash(t, r)
	return r
}

// crashMarks are what the Go runtime and the C runtime print when a process
// dies rather than failing cleanly.
var crashMarks = []string{"panic:", "fatal error:", "goroutine ", "SIGSEGV", "runtime error", "GGML_ASSERT", "terminate called", "Aborted"}

func checkNoCrash(t *testing.T, r cliResult) {
	t.Helper()
	if r.code < 0 || r.code > 2 {
		t.Fatalf("exit code %d (killed by a signal or crashed)\n%s", r.code, r)
	}
	for _, m := range crashMarks {
		if strings.Contains(r.stderr, m) {
			t.Fatalf("crashed: stderr contains %q\n%s", m, r)
		}
	}
	if r.rss > cliMemLimit {
		t.Fatalf("peak memory %d MiB exceeds %d MiB\n%s", r.rss>>20, cliMemLimit>>20, r)
	}
}

// layerdiffInProcess runs the CLI in this process with stdout and stderr
// sent to files in dir: for loops of hundreds of runs where a child process each
// would be too slow. A panic fails the test.
func layerdiffInProcess(t *testing.T, dir string, args ...string) cliResult {
	t.Helper()
	outF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errF, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outF, errF
	code := func() int {
		defer func() { os.Stdout, os.Stderr = oldOut, oldErr }()
		return run(append([]string{"layerdiff"}, args...))
	}()
	outF.Close()
	errF.Close()
	so, _ := os.ReadFile(outF.Name())
	se, _ := os.ReadFile(errF.Name())
	r := cliResult{args: args, code: code, stdout: string(so), stderr: string(se)}
	checkNoCrash(t, r)
	return r
}

// ---------------------------------------------------------------------------
// GGUF files, byte by byte

// rawGGUF is a GGUF file under construction with named offsets (marks).
type rawGGUF struct {
	b     []byte
	marks map[string]int
	order []string
}

func (r *rawGGUF) mark(name string) {
	r.marks[name] = len(r.b)
	r.order = append(r.order, name)
}
func (r *rawGGUF) u32(v uint32) { r.b = binary.LittleEndian.AppendUint32(r.b, v) }
func (r *rawGGUF) u64(v uint64) { r.b = binary.LittleEndian.AppendUint64(r.b, v) }
func (r *rawGGUF) str(s string) { r.u64(uint64(len(s))); r.b = append(r.b, s...) }

// GGUF value types (gguf_type).
const (
	gU32   = 4
	gF32   = 6
	gStr   = 8
	gArr   = 9
	ggmlF  = 0 // GGML_TYPE_F32
	ggmlQ8 = 8 // GGML_TYPE_Q8_0
)

type ggufKV struct {
	key string
	typ uint32
	val func(*rawGGUF)
}

type ggufTensor struct {
	name   string
	ne     []uint64
	typ    uint32
	offset int64 // relative to the data section; -1: next aligned offset
	size   int   // bytes of data written for it
}

// ggufSpec describes a GGUF file; fields are changed one at a time to
// break it.
type ggufSpec struct {
	magic         string
	version       uint32
	nTensors, nKV int64 // -1: the real counts
	kvs           []ggufKV
	tensors       []ggufTensor
	align         int
}

func strVal(s string) func(*rawGGUF) { return func(r *rawGGUF) { r.str(s) } }
func u32Val(v uint32) func(*rawGGUF) { return func(r *rawGGUF) { r.u32(v) } }

// validGGUF is a small valid GGUF v3 file: five KVs (one an array of
// strings), an F32 and a Q8_0 tensor, with padding before the data.
func validGGUF() ggufSpec {
	return ggufSpec{
		magic: "GGUF", version: 3, nTensors: -1, nKV: -1, align: 32,
		kvs: []ggufKV{
			{"general.architecture", gStr, strVal("llama")},
			{"general.alignment", gU32, u32Val(32)},
			{"llama.block_count", gU32, u32Val(1)},
			{"general.name", gStr, strVal("hostile")},
			{"tokenizer.ggml.tokens", gArr, func(r *rawGGUF) {
				r.u32(gStr)
				r.u64(3)
				r.str("a")
				r.str("bc")
				r.str("")
			}},
		},
		tensors: []ggufTensor{
			{"token_embd.weight", []uint64{4, 2}, ggmlF, -1, 32},
			{"blk.0.attn_q.weight", []uint64{32, 2}, ggmlQ8, -1, 68},
		},
	}
}

func (s ggufSpec) build() *rawGGUF {
	r := &rawGGUF{marks: map[string]int{}}
	r.mark("magic")
	r.b = append(r.b, s.magic...)
	r.mark("version")
	r.u32(s.version)
	nt, nkv := s.nTensors, s.nKV
	if nt < 0 {
		nt = int64(len(s.tensors))
	}
	if nkv < 0 {
		nkv = int64(len(s.kvs))
	}
	r.mark("n_tensors")
	r.u64(uint64(nt))
	r.mark("n_kv")
	r.u64(uint64(nkv))
	for i, kv := range s.kvs {
		r.mark(fmt.Sprintf("kv %d key", i))
		r.str(kv.key)
		r.mark(fmt.Sprintf("kv %d type", i))
		r.u32(kv.typ)
		r.mark(fmt.Sprintf("kv %d value", i))
		kv.val(r)
	}
	align := int64(s.align)
	next := int64(0)
	for i, t := range s.tensors {
		r.mark(fmt.Sprintf("tensor %d name", i))
		r.str(t.name)
		r.mark(fmt.Sprintf("tensor %d n_dims", i))
		r.u32(uint32(len(t.ne)))
		r.mark(fmt.Sprintf("tensor %d ne", i))
		for _, d := range t.ne {
			r.u64(d)
		}
		r.mark(fmt.Sprintf("tensor %d type", i))
		r.u32(t.typ)
		r.mark(fmt.Sprintf("tensor %d offset", i))
		off := t.offset
		if off < 0 {
			off = next
		}
		r.u64(uint64(off))
		next = (off + int64(t.size) + align - 1) / align * align
	}
	if pad := (align - int64(len(r.b))%align) % align; pad > 0 {
		r.mark("padding")
		r.b = append(r.b, make([]byte, pad)...)
	}
	start := len(r.b)
	for i, t := range s.tensors {
		for int64(len(r.b)-start)%align != 0 {
			r.b = append(r.b, 0)
		}
		r.mark(fmt.Sprintf("data %d", i))
		for j := 0; j < t.size; j++ {
			r.b = append(r.b, byte(j%7)) // small F32 and Q8_0 bit patterns, all finite
		}
	}
	return r
}

func with(f func(*ggufSpec)) []byte {
	s := validGGUF()
	f(&s)
	return s.build().b
}

// ---------------------------------------------------------------------------
// Models, .npy files, dumps and logs

// smallModelConfig is a fixture model that runs in milliseconds.
func smallModelConfig() fixture.Config {
	return fixture.Config{Arch: "llama", Seed: 7, Embd: 64, Layers: 1, Heads: 2, KVHeads: 1, FF: 128, VocabSize: 320, Ctx: 64, RopeBase: 10000, RMSEps: 1e-5}
}

// writeModel writes the small fixture, after edit changes its metadata or
// tensors, as an F32 GGUF file.
func writeModel(t *testing.T, path string, edit func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor)) {
	t.Helper()
	kvs, ts, err := fixture.Build(smallModelConfig())
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		kvs, ts = edit(kvs, ts)
	}
	if err := gguf.WriteFile(path, kvs, ts, 32); err != nil {
		t.Fatal(err)
	}
}

// setKV replaces the value of key.
func setKV(kvs []gguf.KV, key string, value any) []gguf.KV {
	for i := range kvs {
		if kvs[i].Key == key {
			kvs[i] = gguf.NewKV(key, value)
		}
	}
	return kvs
}

// tokenEmbeddings returns the rows of token_embd.weight of the F32 model at
// path for the tokens: the model's inp_embd, ne {n_embd, len(tokens)}.
func tokenEmbeddings(t *testing.T, path string, tokens []int32) ([]float32, int64) {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, ok := f.Tensor("token_embd.weight")
	if !ok || ti.Type != quant.F32 {
		t.Fatalf("%s: no F32 token_embd.weight", path)
	}
	raw, err := f.TensorData(ti)
	if err != nil {
		t.Fatal(err)
	}
	embd := ti.Ne[0]
	var out []float32
	for _, tok := range tokens {
		row := raw[int64(tok)*embd*4 : (int64(tok)+1)*embd*4]
		for i := int64(0); i < embd; i++ {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(row[4*i:])))
		}
	}
	return out, embd
}

// npyBytes builds a .npy file of the given version whose header dict is
// header (padded with spaces and a newline to a multiple of 64 bytes).
func npyBytes(major byte, header string, data []byte) []byte {
	pre := 10
	if major >= 2 {
		pre = 12
	}
	n := len(header) + 1
	n += (64 - (pre+n)%64) % 64
	h := header + strings.Repeat(" ", n-len(header)-1) + "\n"
	b := append([]byte("\x93NUMPY"), major, 0)
	if major >= 2 {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	}
	return append(append(b, h...), data...)
}

func f32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// npyTensor is one tensor of an .npy directory: ggml ne {ne0, ne1}.
type npyTensor struct {
	name     string
	ne0, ne1 int64
	vals     []float32
}

func writeNPYDir(t *testing.T, dir string, ts ...npyTensor) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if err := reference.WriteNPYFloat32(filepath.Join(dir, x.name+".npy"), []int64{x.ne1, x.ne0}, x.vals); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// dumpNode is one node of a hand-made dump.
type dumpNode struct {
	name string
	ne   []int64
	vals []float32
}

// writeDump writes a layerdiff dump directory by hand: .npy files and a
// manifest (validated by Manifest.Write) saying the dump was made from
// modelPath with sha256 sum, on tokens.
func writeDump(t *testing.T, dir, modelPath, sum string, tokens []int32, nodes ...dumpNode) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &reference.Manifest{
		LayerdiffVersion: version, LlamaCppCommit: "ec98e2002", LlamaCppSource: "hand-made by badinput_test.go",
		Model:  reference.ModelInfo{Path: modelPath, SHA256: sum, Architecture: "llama"},
		Tokens: tokens, Threads: 1, FlashAttnRequested: "off", FlashAttn: "off", TypeK: "f16", TypeV: "f16",
		NCtx: 256, NBatch: len(tokens), NUBatch: len(tokens), OutputAll: true,
	}
	for i, n := range nodes {
		file := reference.NodeFileName(i, n.name)
		if err := reference.WriteNPYFloat32(filepath.Join(dir, file), reference.NPYShape(n.ne), n.vals); err != nil {
			t.Fatal(err)
		}
		st := reference.ComputeStats(n.vals)
		m.Nodes = append(m.Nodes, reference.ManifestNode{Index: i, Key: n.name, Name: n.name, Op: "GET_ROWS", Type: "f32", Ne: n.ne, File: file, Stats: &st})
	}
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// editManifest rewrites dir/manifest.json through a generic JSON edit.
func editManifest(t *testing.T, dir string, edit func(m map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, reference.ManifestFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.MarshalIndent(m, "", "  "); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, b)
}

// cFloat formats v as C's printf("%*.*f") does, NaN and infinities
// included ("nan", "-nan", "inf", "-inf").
func cFloat(v float64, width, prec int) string {
	var s string
	switch {
	case math.IsNaN(v) && math.Signbit(v):
		s = "-nan"
	case math.IsNaN(v):
		s = "nan"
	case math.IsInf(v, 1):
		s = "inf"
	case math.IsInf(v, -1):
		s = "-inf"
	default:
		s = strconv.FormatFloat(v, 'f', prec, 64)
	}
	if len(s) < width {
		s = strings.Repeat(" ", width-len(s)) + s
	}
	return s
}

// logTensor is one tensor of a generated eval-callback log, printed in
// full (ne0, ne1 <= 6, so nothing is elided).
type logTensor struct {
	name     string
	ne0, ne1 int
	vals     []float32
	text     map[int]string // printed text overriding vals[i] (e.g. "-nan")
}

// evalCallbackLog prints tensors the way llama.cpp's common_debug_cb_eval
// does (4-space layout, docs/log-formats.md), with a float32 sum of all
// elements, separated by garbage lines when garbage is set, with \r\n line
// endings when crlf is set.
func evalCallbackLog(ts []logTensor, garbage, crlf bool) []byte {
	var b strings.Builder
	b.WriteString("system_info: n_threads = 2 (n_threads_batch = 2) / 2 | CPU : SSE3 = 1 | AVX2 = 1 |\n")
	for k, x := range ts {
		if garbage && k > 0 {
			b.WriteString("llama_perf_context_print: load time = 12.34 ms\n\x1b[0m random junk ]] [[ ... sum = nope\n\n")
		}
		fmt.Fprintf(&b, "common_debug_cb_eval: %24s = (f32) %10s(x{%d, %d, 1, 1}, }) = {%d, %d, 1, 1}\n", x.name, "ADD", x.ne0, x.ne1, x.ne0, x.ne1)
		b.WriteString("    [\n        [\n")
		var sum float32
		for i1 := 0; i1 < x.ne1; i1++ {
			b.WriteString("            [")
			for i0 := 0; i0 < x.ne0; i0++ {
				i := i1*x.ne0 + i0
				if i0 > 0 {
					b.WriteString(", ")
				}
				s, ok := x.text[i]
				if !ok {
					s = cFloat(float64(x.vals[i]), 12, 4)
				} else {
					s = strings.Repeat(" ", max(0, 12-len(s))) + s
				}
				b.WriteString(s)
				sum += x.vals[i]
			}
			b.WriteString("  ],\n")
		}
		b.WriteString("        ],\n    ]\n")
		fmt.Fprintf(&b, "    sum = %s\n", cFloat(float64(sum), 0, 6))
	}
	s := b.String()
	if crlf {
		s = strings.ReplaceAll(s, "\n", "\r\n")
	}
	return []byte(s)
}

// logTensors are three small tensors for generated logs; written in full
// to an .npy directory (npyOfLog) they make `compare LOG DIR` pass.
func logTensors() []logTensor {
	mk := func(name string, seed float32) logTensor {
		x := logTensor{name: name, ne0: 4, ne1: 2}
		for i := range 8 {
			x.vals = append(x.vals, seed*float32(i+1)-0.25*float32(i*i))
		}
		return x
	}
	return []logTensor{mk("embd", 0.5), mk("norm-0", 1.25), mk("l_out-0", -0.75)}
}

func npyOfLog(t *testing.T, dir string, ts []logTensor) string {
	t.Helper()
	var nts []npyTensor
	for _, x := range ts {
		nts = append(nts, npyTensor{x.name, int64(x.ne0), int64(x.ne1), x.vals})
	}
	return writeNPYDir(t, dir, nts...)
}

// ---------------------------------------------------------------------------
// The table

// badCase is one row: setup writes the inputs into dir and returns the
// command line; the run must end with code and print every want string
// ("$DIR" stands for dir) on stderr (code 2) or on stdout or stderr
// (codes 0 and 1); check, when set, looks further.
type badCase struct {
	name  string
	llama bool // needs the llamacpp build
	setup func(t *testing.T, dir string) []string
	code  int
	want  []string
	check func(t *testing.T, dir string, r cliResult)
}

// ggufCase runs `layerdiff inspect` on a GGUF file holding b.
func ggufCase(name string, b []byte, want ...string) badCase {
	return badCase{
		name: "gguf/" + name,
		setup: func(t *testing.T, dir string) []string {
			writeFile(t, filepath.Join(dir, "m.gguf"), b)
			return []string{"inspect", filepath.Join(dir, "m.gguf")}
		},
		code: exitBadInput,
		want: append([]string{"$DIR/m.gguf: offset 0x"}, want...),
	}
}

// ggufCases are the GGUF rows: every structural defect, and a cut inside
// every section of the file.
func ggufCases() []badCase {
	valid := ggufCase("valid (the control every other row breaks)", validGGUF().build().b)
	valid.code, valid.want = exitAgree, []string{"blk.0.attn_q.weight", "q8_0"}
	cs := []badCase{
		valid,
		ggufCase("empty file", nil, "empty file"),
		ggufCase("wrong magic", with(func(s *ggufSpec) { s.magic = "GGML" }), `bad magic "GGML"`),
		ggufCase("version 1", with(func(s *ggufSpec) { s.version = 1 }), "version 1"),
		ggufCase("version 4", with(func(s *ggufSpec) { s.version = 4 }), "version 4"),
		ggufCase("n_tensors 2^62", with(func(s *ggufSpec) { s.nTensors = 1 << 62 }), "n_tensors 4611686018427387904"),
		ggufCase("n_kv 2^62", with(func(s *ggufSpec) { s.nKV = 1 << 62 }), "n_kv 4611686018427387904"),
		ggufCase("string length 2^63", with(func(s *ggufSpec) {
			s.kvs[3].val = func(r *rawGGUF) { r.u64(1 << 63); r.b = append(r.b, "hostile"...) }
		}), `kv 3 "general.name": string length 9223372036854775808`),
		ggufCase("array length 2^63", with(func(s *ggufSpec) {
			s.kvs[4].val = func(r *rawGGUF) { r.u32(gStr); r.u64(1 << 63) }
		}), `kv 4 "tokenizer.ggml.tokens"`, "9223372036854775808"),
		ggufCase("f32 array length 2^62", with(func(s *ggufSpec) {
			s.kvs[4].val = func(r *rawGGUF) { r.u32(gF32); r.u64(1 << 62) }
		}), `kv 4 "tokenizer.ggml.tokens"`, "4611686018427387904"),
		ggufCase("n_dims 0", with(func(s *ggufSpec) { s.tensors[0].ne = nil }), `tensor 0 "token_embd.weight": n_dims 0`),
		ggufCase("n_dims 5", with(func(s *ggufSpec) { s.tensors[0].ne = []uint64{4, 2, 1, 1, 1} }), `tensor 0 "token_embd.weight": n_dims 5`),
		ggufCase("ne product overflows int64", with(func(s *ggufSpec) { s.tensors[0].ne = []uint64{1 << 32, 1 << 32} }), `tensor 0 "token_embd.weight"`, "overflow"),
		ggufCase("negative ne", with(func(s *ggufSpec) { s.tensors[0].ne = []uint64{4, 1 << 63} }), `tensor 0 "token_embd.weight"`),
		ggufCase("tensor data past EOF", with(func(s *ggufSpec) { s.tensors[1].ne = []uint64{32, 1000} }), `tensor 1 "blk.0.attn_q.weight": data [0x`, "beyond end of file"),
		ggufCase("misaligned offset", with(func(s *ggufSpec) { s.tensors[1].offset = 33 }), `tensor 1 "blk.0.attn_q.weight": data offset 0x21 is not a multiple of the alignment 32`),
		ggufCase("offset past EOF", with(func(s *ggufSpec) { s.tensors[1].offset = 1 << 40 }), `tensor 1 "blk.0.attn_q.weight"`),
		ggufCase("alignment 0", with(func(s *ggufSpec) { s.kvs[1].val = u32Val(0) }), `kv 1 "general.alignment": alignment 0 is not a power of two`),
		ggufCase("alignment 48", with(func(s *ggufSpec) { s.kvs[1].val = u32Val(48) }), `kv 1 "general.alignment": alignment 48 is not a power of two`),
		ggufCase("alignment as a string", with(func(s *ggufSpec) { s.kvs[1].typ = gStr; s.kvs[1].val = strVal("32") }), `kv 1 "general.alignment"`),
		ggufCase("unknown tensor type", with(func(s *ggufSpec) { s.tensors[1].typ = 100 }), `tensor 1 "blk.0.attn_q.weight": unknown tensor type 100`),
		ggufCase("removed tensor type 4", with(func(s *ggufSpec) { s.tensors[1].typ = 4 }), `tensor 1 "blk.0.attn_q.weight": unknown tensor type 4`),
		ggufCase("duplicate tensor name", with(func(s *ggufSpec) { s.tensors[1].name = "token_embd.weight" }), `tensor 1 "token_embd.weight": duplicate tensor name (first at tensor 0)`),
		ggufCase("row not a multiple of the block size", with(func(s *ggufSpec) { s.tensors[1].ne = []uint64{16, 2} }), `tensor 1 "blk.0.attn_q.weight"`, "block size"),
		ggufCase("invalid value type", with(func(s *ggufSpec) { s.kvs[3].typ = 13 }), `kv 3 "general.name": invalid value type 13`),
		ggufCase("duplicate key", with(func(s *ggufSpec) { s.kvs[3].key = "general.architecture" }), `kv 3 "general.architecture": duplicate key`),
	}
	// A cut just inside every field of every section.
	r := validGGUF().build()
	if _, ok := r.marks["padding"]; !ok {
		panic("validGGUF has no padding before its data")
	}
	for _, m := range r.order {
		at := r.marks[m] + 1
		if at >= len(r.b) {
			continue
		}
		cs = append(cs, ggufCase(fmt.Sprintf("cut inside %s (at byte %d)", m, at), r.b[:at]))
	}
	cs = append(cs, ggufCase("cut one byte short", r.b[:len(r.b)-1], "beyond end of file"))
	return cs
}

// modelCase runs `layerdiff run` (and, with llama.cpp, `layerdiff dump`) on
// a fixture model broken by edit: metadata GGUF allows but the model does
// not.
func modelCases() []badCase {
	type mc struct {
		name string
		edit func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor)
		want []string
	}
	cases := []mc{
		{"block_count is a string", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return setKV(kvs, "llama.block_count", "one"), ts
		}, []string{"llama.block_count", "value has type str, want an unsigned integer"}},
		{"embedding_length is a float", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return setKV(kvs, "llama.embedding_length", float32(64)), ts
		}, []string{"llama.embedding_length"}},
		{"rms epsilon is a string", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return setKV(kvs, "llama.attention.layer_norm_rms_epsilon", "1e-5"), ts
		}, []string{"llama.attention.layer_norm_rms_epsilon"}},
		{"block_count larger than the tensors", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return setKV(kvs, "llama.block_count", uint32(3)), ts
		}, []string{"blk.1."}},
		{"tensor missing", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return kvs, slices.DeleteFunc(ts, func(w gguf.WriteTensor) bool { return w.Name == "blk.0.attn_k.weight" })
		}, []string{"blk.0.attn_k.weight"}},
		{"tensor of the wrong shape", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			for i := range ts {
				if ts[i].Name == "blk.0.ffn_up.weight" {
					ts[i].Ne = []int64{ts[i].Ne[1], ts[i].Ne[0]}
				}
			}
			return kvs, ts
		}, []string{"blk.0.ffn_up.weight"}},
		{"unsupported architecture", func(kvs []gguf.KV, ts []gguf.WriteTensor) ([]gguf.KV, []gguf.WriteTensor) {
			return setKV(kvs, "general.architecture", "mamba"), ts
		}, []string{`"mamba"`}},
	}
	var out []badCase
	for _, c := range cases {
		out = append(out, badCase{
			name: "model/" + c.name + " (run)",
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "bad.gguf")
				writeModel(t, p, c.edit)
				ref := writeNPYDir(t, filepath.Join(dir, "ref"), npyTensor{"inp_embd", 64, 2, make([]float32, 128)})
				return []string{"run", "--ref", ref, "--model", p, "--tokens", "1,2"}
			},
			code: exitBadInput,
			want: append([]string{"$DIR/bad.gguf"}, c.want...),
		}, badCase{
			name:  "model/" + c.name + " (dump)",
			llama: true,
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "bad.gguf")
				writeModel(t, p, c.edit)
				return []string{"dump", "--model", p, "--tokens", "1,2", "--out", filepath.Join(dir, "d")}
			},
			code:  exitBadInput,
			want:  []string{"$DIR/bad.gguf"},
			check: nothingAt("d"),
		})
	}
	return out
}

// npyCases are the .npy rows, each read three ways: named by a dump
// manifest, as the only file of an .npy directory, and beside a good file
// (skipped with a warning).
func npyCases() []badCase {
	good := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }"
	data := f32Bytes(1, 2, 3, 4, 5, 6, 7, 8)
	files := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "offset 0: not a .npy file"},
		{"bad magic", append([]byte("\x93NUMPZ\x01\x00"), npyBytes(1, good, data)[8:]...), `offset 0: not a .npy file: magic "\x93NUMPZ"`},
		{"version 9", append([]byte("\x93NUMPY\x09\x00"), npyBytes(1, good, data)[8:]...), "offset 6: unsupported .npy version 9.0"},
		{"header length past EOF", func() []byte {
			b := npyBytes(1, good, data)
			binary.LittleEndian.PutUint16(b[8:], 0xfff0)
			return b
		}(), "offset 8: header length 65520 runs past the end of the file"},
		{"v2 header length 2^32-1", func() []byte {
			b := npyBytes(2, good, data)
			binary.LittleEndian.PutUint32(b[8:], math.MaxUint32)
			return b
		}(), "offset 8: header length 4294967295"},
		{"unknown dtype", npyBytes(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 4), }", data), "offset 10: header"},
		{"object dtype", npyBytes(1, "{'descr': '|O', 'fortran_order': False, 'shape': (2, 4), }", data), "offset 10: header"},
		{"shape larger than the data", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 4), }", data), "offset 128: shape (100, 4) of <f4 needs 400 items (1600 bytes) but 32 bytes"},
		{"shape smaller than the data", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), }", data), "offset 128: shape (1, 4) of <f4 needs 4 items (16 bytes) but 32 bytes"},
		{"shape overflows", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", data), "overflows"},
		{"negative shape", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }", data), "offset 10: header"},
		{"unterminated dict", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4)", data), "offset 10: header"},
		{"cut inside the header", npyBytes(1, good, data)[:70], "offset 8: header length 118 runs past the end of the file (70 bytes)"},
		{"cut inside the data", npyBytes(1, good, data)[:150], "offset 128: shape (2, 4) of <f4 needs 8 items (32 bytes) but 22 bytes"},
	}
	var out []badCase
	for _, f := range files {
		out = append(out, badCase{
			name: "npy/" + f.name + " (in a dump)",
			setup: func(t *testing.T, dir string) []string {
				d := writeDump(t, filepath.Join(dir, "dump"), "m.gguf", "", []int32{1, 2}, dumpNode{"x", []int64{4, 2}, make([]float32, 8)})
				writeFile(t, filepath.Join(d, reference.NodeFileName(0, "x")), f.b)
				return []string{"compare", d, d}
			},
			code: exitBadInput,
			want: []string{"$DIR/dump/manifest.json", `node 0 "x"`, "$DIR/dump/0000-x.npy", f.want},
		}, badCase{
			name: "npy/" + f.name + " (alone in a directory)",
			setup: func(t *testing.T, dir string) []string {
				writeFile(t, filepath.Join(dir, "npy", "x.npy"), f.b)
				good := writeNPYDir(t, filepath.Join(dir, "good"), npyTensor{"x", 4, 2, make([]float32, 8)})
				return []string{"compare", filepath.Join(dir, "npy"), good}
			},
			code: exitBadInput,
			want: []string{"$DIR/npy", "$DIR/npy/x.npy", f.want},
		}, badCase{
			name: "npy/" + f.name + " (beside a good file)",
			setup: func(t *testing.T, dir string) []string {
				writeNPYDir(t, filepath.Join(dir, "npy"), npyTensor{"y", 4, 2, make([]float32, 8)})
				writeFile(t, filepath.Join(dir, "npy", "x.npy"), f.b)
				good := writeNPYDir(t, filepath.Join(dir, "good"), npyTensor{"y", 4, 2, make([]float32, 8)})
				return []string{"compare", filepath.Join(dir, "npy"), good}
			},
			// Not a pass: the comparison is incomplete.
			code: exitBadInput,
			want: []string{"$DIR/npy/x.npy", f.want, "incomplete comparison"},
		})
	}
	return out
}

// dumpCases are the dump rows: damaged manifests, dumps that do not match
// the run, and the model check.
func dumpCases() []badCase {
	tokens := []int32{1, 5, 9}
	node := dumpNode{"inp_embd", []int64{4, 3}, make([]float32, 12)}
	simple := func(t *testing.T, dir string) string {
		return writeDump(t, filepath.Join(dir, "dump"), "m.gguf", "", tokens, node)
	}
	manifestCase := func(name string, edit func(t *testing.T, d string), want ...string) badCase {
		return badCase{
			name: "dump/" + name,
			setup: func(t *testing.T, dir string) []string {
				d := simple(t, dir)
				edit(t, d)
				return []string{"compare", d, d}
			},
			code: exitBadInput,
			want: want,
		}
	}
	return []badCase{
		manifestCase("manifest missing", func(t *testing.T, d string) {
			os.Remove(filepath.Join(d, reference.ManifestFile))
		}, "$DIR/dump", "manifest"),
		manifestCase("directory empty", func(t *testing.T, d string) {
			os.RemoveAll(d)
			os.Mkdir(d, 0o755)
		}, "$DIR/dump", "not a reference directory"),
		manifestCase("manifest is not JSON", func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, reference.ManifestFile), []byte("{\n  \"format\": \"layerdiff-dump\",\n  garbage\n}\n"))
		}, "$DIR/dump/manifest.json:3:", "invalid manifest JSON"),
		manifestCase("manifest cut short", func(t *testing.T, d string) {
			b, _ := os.ReadFile(filepath.Join(d, reference.ManifestFile))
			writeFile(t, filepath.Join(d, reference.ManifestFile), b[:len(b)/2])
		}, "$DIR/dump/manifest.json:", "invalid manifest JSON"),
		manifestCase("manifest empty", func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, reference.ManifestFile), nil)
		}, "$DIR/dump/manifest.json"),
		manifestCase("manifest of binary garbage", func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, reference.ManifestFile), []byte("\x00\xff\xfe\x93NUMPY"))
		}, "$DIR/dump/manifest.json"),
		manifestCase("manifest names a missing file", func(t *testing.T, d string) {
			os.Remove(filepath.Join(d, reference.NodeFileName(0, "inp_embd")))
		}, "$DIR/dump/manifest.json", `node 0 "inp_embd"`, "0000-inp_embd.npy"),
		manifestCase("manifest names a file outside the dump", func(t *testing.T, d string) {
			editManifest(t, d, func(m map[string]any) { m["nodes"].([]any)[0].(map[string]any)["file"] = "../../etc/passwd" })
		}, "$DIR/dump/manifest.json", `node 0 "inp_embd"`, "../../etc/passwd"),
		manifestCase("manifest shape disagrees with the file", func(t *testing.T, d string) {
			editManifest(t, d, func(m map[string]any) { m["nodes"].([]any)[0].(map[string]any)["ne"] = []int{3, 4} })
		}, "$DIR/dump/manifest.json", `node 0 "inp_embd"`, "shape"),
		manifestCase("manifest from a newer layerdiff", func(t *testing.T, d string) {
			editManifest(t, d, func(m map[string]any) { m["format_version"] = 99 })
		}, "$DIR/dump/manifest.json", "format_version 99"),
		manifestCase("manifest of another format", func(t *testing.T, d string) {
			editManifest(t, d, func(m map[string]any) { m["format"] = "something-else" })
		}, "$DIR/dump/manifest.json", `"something-else"`),
		{
			name: "dump/reference path does not exist",
			setup: func(t *testing.T, dir string) []string {
				return []string{"compare", filepath.Join(dir, "nope"), filepath.Join(dir, "nope")}
			},
			code: exitBadInput,
			want: []string{"$DIR/nope"},
		},
		{
			name: "dump/tokens differ between two dumps",
			setup: func(t *testing.T, dir string) []string {
				a := simple(t, dir)
				b := writeDump(t, filepath.Join(dir, "other"), "m.gguf", "", []int32{1, 5, 7}, node)
				return []string{"compare", a, b}
			},
			code: exitBadInput,
			want: []string{"token ids differ", "$DIR/dump: [1 5 9]", "$DIR/other: [1 5 7]"},
		},
		{
			name: "dump/tokens differ from --tokens",
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "m.gguf")
				writeModel(t, p, nil)
				d := simple(t, dir)
				return []string{"run", "--ref", d, "--model", p, "--tokens", "1,5,10"}
			},
			code: exitBadInput,
			want: []string{"token ids differ", "$DIR/dump (reference): [1 5 9]", "--tokens: [1 5 10]"},
		},
		{
			name: "dump/made from another model",
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "m.gguf")
				writeModel(t, p, nil)
				emb, n := tokenEmbeddings(t, p, tokens)
				other := strings.Repeat("ab", 32)
				d := writeDump(t, filepath.Join(dir, "dump"), "/models/other.gguf", other, tokens, dumpNode{"inp_embd", []int64{n, 3}, emb})
				return []string{"run", "--ref", d, "--model", p}
			},
			code: exitAgree,
			want: []string{"MODEL MISMATCH", "/models/other.gguf", strings.Repeat("ab", 32), "$DIR/m.gguf"},
		},
		{
			name: "dump/made from another model (json)",
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "m.gguf")
				writeModel(t, p, nil)
				emb, n := tokenEmbeddings(t, p, tokens)
				d := writeDump(t, filepath.Join(dir, "dump"), "/models/other.gguf", strings.Repeat("cd", 32), tokens, dumpNode{"inp_embd", []int64{n, 3}, emb})
				return []string{"run", "--ref", d, "--model", p, "--format", "json"}
			},
			code: exitAgree,
			check: func(t *testing.T, dir string, r cliResult) {
				var rep struct {
					Verdict  string   `json:"verdict"`
					Warnings []string `json:"warnings"`
				}
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatalf("report is not JSON: %v\n%s", err, r)
				}
				if rep.Verdict != "pass" || len(rep.Warnings) == 0 || !strings.HasPrefix(rep.Warnings[0], "MODEL MISMATCH") {
					t.Errorf("verdict %q, warnings %q: want pass with the model mismatch first", rep.Verdict, rep.Warnings)
				}
			},
		},
	}
}

// nanCases compare .npy directories holding NaN and Inf on either side:
// per-tensor verdicts, a warning for shared non-finite values, never a
// silent pass.
func nanCases() []badCase {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	row := func(v ...float32) []float32 { return append([]float32{0.5, -1, 2, 3.25, 4, 5, 6}, v...) }
	type nc struct {
		name      string
		ref, oth  []float32
		code      int
		want      []string
		jsonState string
	}
	cases := []nc{
		{"NaN in the reference only", row(nan), row(7), exitDivergence, []string{"x"}, "fail"},
		{"NaN in the other only", row(7), row(nan), exitDivergence, []string{"x"}, "fail"},
		{"Inf in the other only", row(7), row(inf), exitDivergence, []string{"x"}, "fail"},
		{"+Inf against -Inf", row(inf), row(-inf), exitDivergence, []string{"x"}, "fail"},
		{"NaN against Inf", row(nan), row(inf), exitDivergence, []string{"x"}, "fail"},
		{"NaN on both sides, same place", row(nan), row(nan), exitAgree, []string{"NaN/Inf at the same positions on both sides"}, "pass"},
		{"Inf on both sides, same place", row(-inf), row(-inf), exitAgree, []string{"NaN/Inf at the same positions on both sides"}, "pass"},
		{"all NaN on both sides", []float32{nan, nan, nan, nan, nan, nan, nan, nan}, []float32{nan, nan, nan, nan, nan, nan, nan, nan}, exitAgree, []string{"NaN/Inf at the same positions on both sides"}, "pass"},
		{"NaN at different places", []float32{nan, 1, 2, 3, 4, 5, 6, 7}, []float32{0, 1, 2, 3, 4, 5, 6, nan}, exitDivergence, []string{"x"}, "fail"},
	}
	var out []badCase
	for _, c := range cases {
		setup := func(t *testing.T, dir string) (string, string) {
			a := writeNPYDir(t, filepath.Join(dir, "a"), npyTensor{"x", 4, 2, c.ref}, npyTensor{"y", 4, 2, row(7)})
			b := writeNPYDir(t, filepath.Join(dir, "b"), npyTensor{"x", 4, 2, c.oth}, npyTensor{"y", 4, 2, row(7)})
			return a, b
		}
		out = append(out, badCase{
			name: "nan/" + c.name,
			setup: func(t *testing.T, dir string) []string {
				a, b := setup(t, dir)
				return []string{"compare", a, b, "--all"}
			},
			code: c.code,
			want: c.want,
		}, badCase{
			name: "nan/" + c.name + " (json)",
			setup: func(t *testing.T, dir string) []string {
				a, b := setup(t, dir)
				return []string{"compare", a, b, "--format", "json"}
			},
			code:  c.code,
			check: jsonRowStatus("x", c.jsonState),
		})
	}
	// The same through a text log: "nan", "-nan" and "inf" as llama.cpp
	// prints them, against .npy values.
	logNaN := func(name string, logVals []float32, text map[int]string, npyVals []float32, code int, want ...string) badCase {
		return badCase{
			name: "nan/log " + name,
			setup: func(t *testing.T, dir string) []string {
				ts := logTensors()
				npyOfLog(t, filepath.Join(dir, "npy"), ts)
				writeNPYDir(t, filepath.Join(dir, "npy"), npyTensor{ts[1].name, 4, 2, npyVals})
				ts[1].vals, ts[1].text = logVals, text
				writeFile(t, filepath.Join(dir, "x.log"), evalCallbackLog(ts, false, false))
				return []string{"compare", filepath.Join(dir, "x.log"), filepath.Join(dir, "npy"), "--all"}
			},
			code: code,
			want: want,
		}
	}
	negNaN := float32(math.Copysign(math.NaN(), -1))
	out = append(out,
		logNaN("nan and -nan where the other has NaN", []float32{0, nan, 1, 2, 3, 4, negNaN, 5}, map[int]string{6: "-nan"},
			[]float32{0, nan, 1, 2, 3, 4, nan, 5}, exitAgree, "NaN/Inf at the same positions on both sides"),
		logNaN("inf and -inf where the other has them", []float32{inf, 1, 1, 2, 3, 4, 5, -inf}, nil,
			[]float32{inf, 1, 1, 2, 3, 4, 5, -inf}, exitAgree, "NaN/Inf at the same positions on both sides"),
		logNaN("-nan where the other has a number", []float32{0, 1, 1, negNaN, 3, 4, 5, 6}, nil,
			[]float32{0, 1, 1, 2, 3, 4, 5, 6}, exitDivergence, "norm-0"),
		logNaN("a number where the other has NaN", []float32{0, 1, 1, 2, 3, 4, 5, 6}, nil,
			[]float32{0, 1, 1, nan, 3, 4, 5, 6}, exitDivergence, "norm-0"),
	)
	return out
}

// jsonRowStatus checks the status of the report row for key.
func jsonRowStatus(key, status string) func(t *testing.T, dir string, r cliResult) {
	return func(t *testing.T, dir string, r cliResult) {
		var rep struct {
			Verdict string `json:"verdict"`
			Tensors []struct {
				Key    string `json:"key"`
				Status string `json:"status"`
			} `json:"tensors"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, r)
		}
		for _, row := range rep.Tensors {
			if row.Key == key {
				if row.Status != status {
					t.Errorf("row %q: status %q, want %q\n%s", key, row.Status, status, r)
				}
				return
			}
		}
		t.Errorf("no row %q in the report\n%s", key, r)
	}
}

// logCases are the text-log rows (the cut at every byte is
// TestCutLogEveryByte).
func logCases() []badCase {
	logCase := func(name string, b func(ts []logTensor) []byte, code int, want ...string) badCase {
		return badCase{
			name: "log/" + name,
			setup: func(t *testing.T, dir string) []string {
				ts := logTensors()
				writeFile(t, filepath.Join(dir, "x.log"), b(ts))
				return []string{"compare", filepath.Join(dir, "x.log"), npyOfLog(t, filepath.Join(dir, "npy"), ts)}
			},
			code: code,
			want: want,
		}
	}
	full := func(ts []logTensor) []byte { return evalCallbackLog(ts, false, false) }
	cutInside := func(marker string, k int) func(ts []logTensor) []byte {
		return func(ts []logTensor) []byte {
			b := full(ts)
			i := 0
			for range k {
				i += bytes.Index(b[i:], []byte(marker)) + 1
			}
			return b[:i+len(marker)/2]
		}
	}
	return []badCase{
		logCase("complete", full, exitAgree),
		logCase("Windows line endings", func(ts []logTensor) []byte { return evalCallbackLog(ts, false, true) }, exitAgree),
		logCase("garbage lines between tensors", func(ts []logTensor) []byte { return evalCallbackLog(ts, true, false) }, exitAgree),
		logCase("garbage lines and Windows line endings", func(ts []logTensor) []byte { return evalCallbackLog(ts, true, true) }, exitAgree),
		logCase("stray line inside a tensor", func(ts []logTensor) []byte {
			return bytes.Replace(full(ts), []byte("        ],\n"), []byte("        ],\nllama_decode: something unrelated\n"), 1)
		}, exitAgree, "$DIR/x.log:", "skipping unexpected line"),
		logCase("row with a value missing", func(ts []logTensor) []byte {
			return bytes.Replace(full(ts), []byte(",       1.2500"), nil, 1)
		}, exitAgree, "$DIR/x.log:"),
		logCase("unparsable value", func(ts []logTensor) []byte {
			return bytes.Replace(full(ts), []byte("1.2500"), []byte("1.2x00"), 1)
		}, exitAgree, "$DIR/x.log:"),
		logCase("cut inside the second header", cutInside("common_debug_cb_eval:", 2), exitAgree, "$DIR/x.log:"),
		logCase("cut inside a row of the second tensor", cutInside("[      1.2500", 1), exitAgree, "$DIR/x.log:", `log ends inside tensor "norm-0"`),
		logCase("cut inside the last sum", cutInside("sum = ", 3), exitAgree, "$DIR/x.log:", `log ends inside tensor "l_out-0"`),
		logCase("cut inside the first tensor", cutInside("[      0.5000", 1), exitBadInput, "$DIR/x.log:", `"embd"`),
		logCase("empty", func([]logTensor) []byte { return nil }, exitBadInput, "$DIR/x.log"),
		logCase("no tensor at all", func([]logTensor) []byte { return []byte("hello\nworld\r\n") }, exitBadInput, "$DIR/x.log"),
		logCase("binary garbage", func([]logTensor) []byte { return bytes.Repeat([]byte{0, 0xff, '\n', 0x93}, 1000) }, exitBadInput, "$DIR/x.log"),
		logCase("one endless line", func([]logTensor) []byte { return bytes.Repeat([]byte("[ 1.0, "), 400000) }, exitBadInput, "$DIR/x.log"),
	}
}

// outputCases are the data-safety rows that need no llama.cpp: existing
// output files are never replaced without --force.
func outputCases() []badCase {
	const keep = "precious user data\n"
	pair := func(t *testing.T, dir string) (string, string) {
		ts := []npyTensor{{"x", 4, 2, []float32{1, 2, 3, 4, 5, 6, 7, 8}}}
		return writeNPYDir(t, filepath.Join(dir, "a"), ts...), writeNPYDir(t, filepath.Join(dir, "b"), ts...)
	}
	saved := func(t *testing.T, dir string) string {
		a, b := pair(t, dir)
		if r := layerdiff(t, "compare", a, b, "--save", filepath.Join(dir, "saved.json")); r.code != exitAgree {
			t.Fatalf("setup:\n%s", r)
		}
		return filepath.Join(dir, "saved.json")
	}
	existing := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "existing.txt")
		writeFile(t, p, []byte(keep))
		return p
	}
	untouched := func(names ...string) func(t *testing.T, dir string, r cliResult) {
		return func(t *testing.T, dir string, r cliResult) {
			if b, err := os.ReadFile(filepath.Join(dir, "existing.txt")); err != nil || string(b) != keep {
				t.Errorf("existing.txt changed: %q, %v", b, err)
			}
			notWritten(names...)(t, dir, r)
		}
	}
	return []badCase{
		{
			name: "output/report --out onto an existing file",
			setup: func(t *testing.T, dir string) []string {
				return []string{"report", "--in", saved(t, dir), "--out", existing(t, dir)}
			},
			code: exitBadInput, want: []string{"$DIR/existing.txt exists; use --force"}, check: untouched(),
		},
		{
			name: "output/report --out --force replaces atomically",
			setup: func(t *testing.T, dir string) []string {
				return []string{"report", "--in", saved(t, dir), "--out", existing(t, dir), "--force", "--format", "md"}
			},
			code: exitAgree,
			check: func(t *testing.T, dir string, r cliResult) {
				b, err := os.ReadFile(filepath.Join(dir, "existing.txt"))
				if err != nil || string(b) == keep || len(b) == 0 {
					t.Errorf("existing.txt not replaced: %q, %v", b, err)
				}
				checkNoTemp(t, dir)
			},
		},
		{
			name: "output/compare --save onto an existing file",
			setup: func(t *testing.T, dir string) []string {
				a, b := pair(t, dir)
				return []string{"compare", a, b, "--save", existing(t, dir), "--out", filepath.Join(dir, "report.txt")}
			},
			code: exitBadInput, want: []string{"$DIR/existing.txt exists; use --force"}, check: untouched("report.txt"),
		},
		{
			name: "output/compare --out onto an existing file",
			setup: func(t *testing.T, dir string) []string {
				a, b := pair(t, dir)
				return []string{"compare", a, b, "--out", existing(t, dir), "--save", filepath.Join(dir, "saved.json")}
			},
			code: exitBadInput, want: []string{"$DIR/existing.txt exists; use --force"}, check: untouched("saved.json"),
		},
		{
			name: "output/compare --out onto a directory",
			setup: func(t *testing.T, dir string) []string {
				a, b := pair(t, dir)
				existing(t, dir)
				return []string{"compare", a, b, "--out", a}
			},
			code: exitBadInput, want: []string{"$DIR/a exists"}, check: untouched(),
		},
		{
			name: "output/compare --out into a missing directory",
			setup: func(t *testing.T, dir string) []string {
				a, b := pair(t, dir)
				existing(t, dir)
				return []string{"compare", a, b, "--out", filepath.Join(dir, "no", "such", "r.txt")}
			},
			code: exitBadInput, want: []string{"writing $DIR/no/such/r.txt"}, check: untouched(),
		},
		{
			name: "output/run --out onto an existing file",
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "m.gguf")
				writeModel(t, p, nil)
				ref := writeNPYDir(t, filepath.Join(dir, "ref"), npyTensor{"inp_embd", 64, 2, make([]float32, 128)})
				return []string{"run", "--ref", ref, "--model", p, "--tokens", "1,2", "--out", existing(t, dir)}
			},
			code: exitBadInput, want: []string{"$DIR/existing.txt exists; use --force"}, check: untouched(),
		},
		{
			name: "output/run --save onto an existing file",
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "m.gguf")
				writeModel(t, p, nil)
				ref := writeNPYDir(t, filepath.Join(dir, "ref"), npyTensor{"inp_embd", 64, 2, make([]float32, 128)})
				return []string{"run", "--ref", ref, "--model", p, "--tokens", "1,2", "--save", existing(t, dir)}
			},
			code: exitBadInput, want: []string{"$DIR/existing.txt exists; use --force"}, check: untouched(),
		},
		{
			name: "output/fixture --out onto an existing file",
			setup: func(t *testing.T, dir string) []string {
				return []string{"fixture", "--type", "f32", "--out", existing(t, dir)}
			},
			code: exitBadInput, want: []string{"$DIR/existing.txt exists; use --force"}, check: untouched(),
		},
		{
			name: "output/report --in a corrupt saved result",
			setup: func(t *testing.T, dir string) []string {
				p := saved(t, dir)
				b, _ := os.ReadFile(p)
				writeFile(t, p, b[:len(b)/3])
				return []string{"report", "--in", p, "--out", filepath.Join(dir, "r.txt")}
			},
			code: exitBadInput, want: []string{"$DIR/saved.json"}, check: notWritten("r.txt"),
		},
		{
			name: "output/corrupt tolerance policy",
			setup: func(t *testing.T, dir string) []string {
				a, b := pair(t, dir)
				writeFile(t, filepath.Join(dir, "pol.json"), []byte(`{"mode": "ggml", "default": {"rtol": -1}}`))
				return []string{"compare", a, b, "--tolerance", filepath.Join(dir, "pol.json")}
			},
			code: exitBadInput, want: []string{"$DIR/pol.json"},
		},
		{
			name: "usage/compare --mode cross-kernel",
			setup: func(t *testing.T, dir string) []string {
				a, b := pair(t, dir)
				return []string{"compare", a, b, "--mode", "cross-kernel"}
			},
			code: exitBadInput, want: []string{"--mode cross-kernel", "needs run"},
		},
	}
}

// notWritten checks that a failed command wrote none of names into dir and
// left no temporary file there.
func notWritten(names ...string) func(t *testing.T, dir string, r cliResult) {
	return func(t *testing.T, dir string, r cliResult) {
		t.Helper()
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
				t.Errorf("%s was written although the command failed", n)
			}
		}
		checkNoTemp(t, dir)
	}
}

// checkNoTemp fails if a temporary file of an atomic write was left in dir.
func checkNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary %s left in %s", e.Name(), dir)
		}
	}
}

// nothingAt checks that no file or directory name was created in dir, and
// no partial dump beside it.
func nothingAt(name string) func(t *testing.T, dir string, r cliResult) {
	return func(t *testing.T, dir string, r cliResult) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s exists after a failed command\n%s", name, r)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.Contains(e.Name(), name+".partial") {
				t.Errorf("partial dump %s left behind\n%s", e.Name(), r)
			}
		}
	}
}

// dumpSafetyCases are the rows of `layerdiff dump` writing its directory.
func dumpSafetyCases() []badCase {
	withModel := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "m.gguf")
		writeModel(t, p, nil)
		return p
	}
	const keep = "do not delete me\n"
	userDir := func(t *testing.T, dir string) string {
		d := filepath.Join(dir, "mine")
		writeFile(t, filepath.Join(d, "notes.txt"), []byte(keep))
		return d
	}
	userDirIntact := func(t *testing.T, dir string, r cliResult) {
		ents, _ := os.ReadDir(filepath.Join(dir, "mine"))
		b, err := os.ReadFile(filepath.Join(dir, "mine", "notes.txt"))
		if len(ents) != 1 || err != nil || string(b) != keep {
			t.Errorf("mine/ changed: %d entries, notes.txt %q, %v", len(ents), b, err)
		}
		nothingAt("mine.partial")(t, dir, r)
	}
	return []badCase{
		{
			name: "dump/into an existing non-empty directory", llama: true,
			setup: func(t *testing.T, dir string) []string {
				return []string{"dump", "--model", withModel(t, dir), "--tokens", "1,2", "--out", userDir(t, dir)}
			},
			code: exitBadInput, want: []string{"$DIR/mine exists and is not empty; use --force"}, check: userDirIntact,
		},
		{
			name: "dump/onto an existing file, even with --force", llama: true,
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "file")
				writeFile(t, p, []byte(keep))
				return []string{"dump", "--model", withModel(t, dir), "--tokens", "1,2", "--out", p, "--force"}
			},
			code: exitBadInput, want: []string{"$DIR/file is a file"},
			check: func(t *testing.T, dir string, r cliResult) {
				if b, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != keep {
					t.Errorf("file changed: %q, %v", b, err)
				}
			},
		},
		{
			name: "dump/token outside the vocabulary", llama: true,
			setup: func(t *testing.T, dir string) []string {
				return []string{"dump", "--model", withModel(t, dir), "--tokens", "1,100000", "--out", filepath.Join(dir, "d")}
			},
			code: exitBadInput, want: []string{"token 100000 at position 1"}, check: nothingAt("d"),
		},
		{
			name: "dump/truncated model", llama: true,
			setup: func(t *testing.T, dir string) []string {
				p := withModel(t, dir)
				b, _ := os.ReadFile(p)
				writeFile(t, p, b[:len(b)-100])
				return []string{"dump", "--model", p, "--tokens", "1,2", "--out", filepath.Join(dir, "d")}
			},
			code: exitBadInput, want: []string{"$DIR/m.gguf: offset 0x", "beyond end of file"}, check: nothingAt("d"),
		},
		{
			name: "dump/write error mid-dump (file size limit)", llama: true,
			setup: func(t *testing.T, dir string) []string {
				// Run under `ulimit -f`: .npy files beyond the limit fail
				// with EFBIG, as on a full disk.
				return []string{"\x00ulimit", "dump", "--model", withModel(t, dir), "--tokens", "1,2,3,4,5,6,7,8", "--out", filepath.Join(dir, "d")}
			},
			code: exitBadInput, want: []string{".npy", "file too large"}, check: nothingAt("d"),
		},
		{
			name: "dump/into an empty directory, then compare with itself", llama: true,
			setup: func(t *testing.T, dir string) []string {
				m := withModel(t, dir)
				os.Mkdir(filepath.Join(dir, "d"), 0o755)
				if r := layerdiff(t, "dump", "--model", m, "--tokens", "1,2,3", "--out", filepath.Join(dir, "d")); r.code != exitAgree {
					t.Fatalf("dump failed:\n%s", r)
				}
				return []string{"compare", filepath.Join(dir, "d"), filepath.Join(dir, "d")}
			},
			code: exitAgree,
		},
	}
}

// showCases are the `layerdiff show` rows: the three forms working, and
// each bad input naming the file and the thing.
func showCases() []badCase {
	vals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i) - 3
		}
		return v
	}
	// A dump of 2 tokens with a name repeated ("Qcur-0" twice).
	dump := func(t *testing.T, dir string) string {
		return writeDump(t, filepath.Join(dir, "d"), "m.gguf", strings.Repeat("0", 64), []int32{1, 2},
			dumpNode{"inp_embd", []int64{4, 2}, vals(8)},
			dumpNode{"attn_norm-0", []int64{4, 2}, vals(8)},
			dumpNode{"Qcur-0", []int64{4, 2}, vals(8)},
			dumpNode{"Qcur-0#1", []int64{2, 2, 2}, vals(8)})
	}
	editName := func(t *testing.T, d string) {
		editManifest(t, d, func(m map[string]any) {
			m["nodes"].([]any)[3].(map[string]any)["name"] = "Qcur-0"
		})
	}
	npy := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "x.npy")
		if err := reference.WriteNPYFloat32(p, []int64{3, 4}, vals(12)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ggufFile := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "m.gguf")
		writeFile(t, p, validGGUF().build().b)
		return p
	}
	return []badCase{
		{name: "show/dump node", setup: func(t *testing.T, dir string) []string {
			return []string{"show", dump(t, dir), "attn_norm-0"}
		}, code: exitAgree, want: []string{"key:    attn_norm-0", "ne:     {4, 2}", "token 0: n=4 mean=-1.5", "token 1: n=4 mean=2.5"}},
		{name: "show/dump node --token --format json", setup: func(t *testing.T, dir string) []string {
			return []string{"show", dump(t, dir), "attn_norm-0", "--token", "1", "--first", "2", "--format", "json"}
		}, code: exitAgree, want: []string{`"slice_by": "token"`, `"mean": 2.5`, `"first": [`, "token 1 only"}},
		{name: "show/ambiguous name takes the first", setup: func(t *testing.T, dir string) []string {
			d := dump(t, dir)
			editName(t, d)
			return []string{"show", d, "Qcur-0"}
		}, code: exitAgree, want: []string{"key:    Qcur-0\n", `name "Qcur-0" is ambiguous: showing Qcur-0; also Qcur-0#1`}},
		{name: "show/node by key", setup: func(t *testing.T, dir string) []string {
			d := dump(t, dir)
			editName(t, d)
			return []string{"show", d, "Qcur-0#1"}
		}, code: exitAgree, want: []string{"key:    Qcur-0#1", "ne:     {2, 2, 2}", "token 1:"}},
		{name: "show/npy dir", setup: func(t *testing.T, dir string) []string {
			return []string{"show", writeNPYDir(t, filepath.Join(dir, "n"), npyTensor{"inp_embd", 4, 2, vals(8)}), "inp_embd"}
		}, code: exitAgree, want: []string{"key:    inp_embd", "row 0: n=4", "row 1: n=4"}},
		{name: "show/npy file", setup: func(t *testing.T, dir string) []string {
			return []string{"show", npy(t, dir), "--first", "3"}
		}, code: exitAgree, want: []string{"ne:     {4, 3}", "all:    n=12 mean=2.5", "first: [-3 -2 -1 …]", "row 2:"}},
		{name: "show/gguf row", setup: func(t *testing.T, dir string) []string {
			return []string{"show", ggufFile(t, dir), "blk.0.attn_q.weight", "--row", "1"}
		}, code: exitAgree, want: []string{"type:   q8_0", "ne:     {32, 2}", "row 1 of 2, dequantized to f32", "all:    n=32"}},
		{name: "show/gguf row json", setup: func(t *testing.T, dir string) []string {
			return []string{"show", ggufFile(t, dir), "token_embd.weight", "--row", "0", "--format", "json"}
		}, code: exitAgree, want: []string{`"type": "f32"`, `"count": 4`}},
		{name: "show/missing dump", setup: func(t *testing.T, dir string) []string {
			return []string{"show", filepath.Join(dir, "nope"), "x"}
		}, code: exitBadInput, want: []string{"$DIR/nope", "no such file"}},
		{name: "show/missing npy", setup: func(t *testing.T, dir string) []string {
			return []string{"show", filepath.Join(dir, "nope.npy")}
		}, code: exitBadInput, want: []string{"$DIR/nope.npy", "no such file"}},
		{name: "show/missing gguf", setup: func(t *testing.T, dir string) []string {
			return []string{"show", filepath.Join(dir, "nope.gguf"), "x", "--row", "0"}
		}, code: exitBadInput, want: []string{"$DIR/nope.gguf"}},
		{name: "show/unknown node suggests", setup: func(t *testing.T, dir string) []string {
			return []string{"show", dump(t, dir), "attn_norm"}
		}, code: exitBadInput, want: []string{`$DIR/d: no node "attn_norm"; nearest: attn_norm-0`}},
		{name: "show/unknown node same base", setup: func(t *testing.T, dir string) []string {
			return []string{"show", dump(t, dir), "Qcur-7"}
		}, code: exitBadInput, want: []string{`no node "Qcur-7"; nearest: Qcur-0, Qcur-0#1`}},
		{name: "show/corrupt npy", setup: func(t *testing.T, dir string) []string {
			p := filepath.Join(dir, "bad.npy")
			writeFile(t, p, npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 4), }", f32Bytes(1, 2)))
			return []string{"show", p}
		}, code: exitBadInput, want: []string{"$DIR/bad.npy: offset 128: shape (100, 4)"}},
		{name: "show/gguf unknown tensor", setup: func(t *testing.T, dir string) []string {
			return []string{"show", ggufFile(t, dir), "attn_q", "--row", "0"}
		}, code: exitBadInput, want: []string{`$DIR/m.gguf: no tensor "attn_q"; nearest: blk.0.attn_q.weight`}},
		{name: "show/gguf row out of range", setup: func(t *testing.T, dir string) []string {
			return []string{"show", ggufFile(t, dir), "blk.0.attn_q.weight", "--row", "2"}
		}, code: exitBadInput, want: []string{`$DIR/m.gguf: tensor "blk.0.attn_q.weight" (ne {32, 2}) has rows 0..1; row 2 is out of range`}},
		{name: "show/gguf without --row", setup: func(t *testing.T, dir string) []string {
			return []string{"show", ggufFile(t, dir), "blk.0.attn_q.weight"}
		}, code: exitBadInput, want: []string{"needs --row R"}},
		{name: "show/token out of range", setup: func(t *testing.T, dir string) []string {
			return []string{"show", dump(t, dir), "attn_norm-0", "--token", "2"}
		}, code: exitBadInput, want: []string{"$DIR/d: attn_norm-0: token 2 out of range (0..1)"}},
		{name: "show/bad format", setup: func(t *testing.T, dir string) []string {
			return []string{"show", npy(t, dir), "--format", "xml"}
		}, code: exitBadInput, want: []string{`--format "xml"`}},
		{name: "show/no arguments", setup: func(t *testing.T, dir string) []string {
			return []string{"show"}
		}, code: exitBadInput, want: []string{"usage: layerdiff show"}},
	}
}

// TestBadInput runs the table.
func TestBadInput(t *testing.T) {
	var cases []badCase
	cases = append(cases, ggufCases()...)
	cases = append(cases, modelCases()...)
	cases = append(cases, npyCases()...)
	cases = append(cases, dumpCases()...)
	cases = append(cases, nanCases()...)
	cases = append(cases, logCases()...)
	cases = append(cases, outputCases()...)
	cases = append(cases, dumpSafetyCases()...)
	cases = append(cases, showCases()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.llama && !withLlama {
				t.Skip("needs the llamacpp build")
			}
			dir := t.TempDir()
			args := c.setup(t, dir)
			var r cliResult
			if len(args) > 0 && args[0] == "\x00ulimit" {
				// 8 blocks: 4 or 8 KiB depending on the shell's unit; the
				// logits (320 x 8 x 4 bytes) do not fit either.
				r = layerdiffWrapped(t, []string{"/bin/sh", "-c", `ulimit -f 8 && exec "$@"`, "sh"}, args[1:]...)
			} else {
				r = layerdiff(t, args...)
			}
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, c.code, r)
			}
			text := r.stderr
			if c.code != exitBadInput {
				text = r.stdout + r.stderr
			}
			for _, w := range c.want {
				w = strings.ReplaceAll(w, "$DIR", dir)
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q\n%s", w, r)
				}
			}
			if c.code == exitBadInput {
				t.Log(strings.TrimSpace(strings.ReplaceAll(r.stderr, dir, "$DIR")))
			}
			t.Logf("peak RSS %d MiB", r.rss>>20)
			// The error is the last line (llama.cpp may log before it).
			if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); c.code == exitBadInput && !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "layerdiff: ") }) {
				t.Errorf("no \"layerdiff: \" error line on stderr\n%s", r)
			}
			if c.check != nil {
				c.check(t, dir, r)
			}
		})
	}
}

// TestCutLogEveryByte cuts a log at every byte and compares it with the
// full tensors: each cut either passes (the tensors before the cut are
// complete and agree; a tensor cut short is dropped with a warning naming
// the file and line) or fails with exit 2 naming the file (nothing complete
// to compare) — never a divergence, a crash or a silent partial tensor.
func TestCutLogEveryByte(t *testing.T) {
	dir := t.TempDir()
	ts := logTensors()
	npy := npyOfLog(t, filepath.Join(dir, "npy"), ts)
	for _, crlf := range []bool{false, true} {
		full := evalCallbackLog(ts, false, crlf)
		firstEnd := bytes.Index(full, []byte("sum = ")) // the first tensor completes after its sum line
		p := filepath.Join(dir, fmt.Sprintf("cut-%v.log", crlf))
		counts := map[int]int{}
		for n := 0; n <= len(full); n++ {
			writeFile(t, p, full[:n])
			r := layerdiffInProcess(t, dir, "compare", p, npy, "--format", "json")
			counts[r.code]++
			switch r.code {
			case exitAgree:
				if n <= firstEnd {
					t.Fatalf("cut at %d (before the first sum) passed\n%s", n, r)
				}
				var rep struct {
					Warnings []string `json:"warnings"`
				}
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatalf("cut at %d: %v\n%s", n, err, r)
				}
				if n < len(full) && !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.HasPrefix(w, p+":") }) {
					t.Fatalf("cut at %d of %d: no warning naming %s:LINE; warnings %q", n, len(full), p, rep.Warnings)
				}
			case exitBadInput:
				if !strings.Contains(r.stderr, p) {
					t.Fatalf("cut at %d: error does not name the file\n%s", n, r)
				}
			default:
				t.Fatalf("cut at %d: exit %d\n%s", n, r.code, r)
			}
		}
		t.Logf("crlf %v: %d cuts: %d pass, %d bad input", crlf, len(full)+1, counts[exitAgree], counts[exitBadInput])
	}
}

// TestDumpInterrupted sends SIGINT to a running dump: the command must exit
// 2 saying it was interrupted, and leave neither the output directory nor a
// partial one nor a manifest.
func TestDumpInterrupted(t *testing.T) {
	if !withLlama {
		t.Skip("needs the llamacpp build")
	}
	dir := t.TempDir()
	m := filepath.Join(dir, "big.gguf")
	cfg := fixture.Config{Arch: "llama", Seed: 3, Embd: 512, Layers: 8, Heads: 8, KVHeads: 4, FF: 1024, VocabSize: 512, Ctx: 512, RopeBase: 10000, RMSEps: 1e-5}
	if err := fixture.Generate(cfg, m); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "d")
	for attempt, ntok := 0, 256; ; attempt, ntok = attempt+1, ntok*2 {
		toks := make([]string, ntok)
		for i := range toks {
			toks[i] = strconv.Itoa(1 + i%500)
		}
		ctx, cancel := context.WithTimeout(context.Background(), cliHangGuard)
		cmd := cliCommand(t, ctx, nil, "dump", "--model", m, "--tokens", strings.Join(toks, ","), "--out", out, "--threads", "1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// Wait until the dump has written its first tensor, then interrupt.
		var waitErr error
		signalled := false
	poll:
		for {
			select {
			case waitErr = <-exited:
				break poll
			default:
			}
			if partialHasNPY(dir, "d") {
				if err := cmd.Process.Signal(os.Interrupt); err != nil {
					t.Fatal(err)
				}
				signalled = true
				waitErr = <-exited
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
		r := cliResult{args: []string{"dump", "...", "SIGINT"}, stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
		var ee *exec.ExitError
		if waitErr != nil && !errors.As(waitErr, &ee) {
			t.Fatal(waitErr)
		}
		if !signalled || r.code == exitAgree {
			// The dump completed before the signal arrived (or before it
			// was sent): try again with a longer one.
			if r.code != exitAgree || attempt == 3 {
				t.Fatalf("the dump ended before it could be interrupted\n%s", r)
			}
			t.Logf("%d tokens: the dump finished before the signal; retrying with more", ntok)
			os.RemoveAll(out)
			continue
		}
		checkNoCrash(t, r)
		if r.code != exitBadInput || !strings.Contains(r.stderr, "interrupted") || !strings.Contains(r.stderr, out) {
			t.Fatalf("want exit 2 saying the dump to %s was interrupted\n%s", out, r)
		}
		nothingAt("d")(t, dir, r)
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == reference.ManifestFile {
				t.Errorf("a manifest was left at %s", p)
			}
			return nil
		})
		return
	}
}

// partialHasNPY reports whether a partial dump of name in dir holds a .npy
// file yet.
func partialHasNPY(dir, name string) bool {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "."+name+".partial") {
			m, _ := filepath.Glob(filepath.Join(dir, e.Name(), "*.npy"))
			if len(m) > 0 {
				return true
			}
		}
	}
	return false
}
