//go:build llamacpp

package cdump_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/llamacpp"
	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/reference/cdump"
)

var (
	fpOnce   sync.Once
	fpModels map[string]string
	fpErr    error
)

// Alignment keys written into the "llama-q8_0-align64" fixture beside the
// real general.alignment: one letter away from it, so that the damage tests
// can turn them into duplicates of it with a one-byte patch.
const (
	alignDupKey   = "general.alignmenX" // u32 64
	alignArrayKey = "general.alignmenY" // [64, 64]
)

// fingerprintModels returns the fixture models the fingerprint tests dump,
// by name, generated once per test binary beside fixtureModels' ones:
//
//   - llama-f32, llama-q8_0: fixtureModels';
//   - qwen2-q4_k_m: qwen2, tied embeddings, quantized to Q4_K_M by llama.cpp
//     (Q4_K and Q6_K matrices);
//   - qwen3-f16-wide: qwen3 in F16 with head_dim 3000, so that q_norm and
//     k_norm (F32) hold 12000 bytes: hashed whole, but more than two
//     samples' worth (at exactly 3 × 4096 bytes the three samples would
//     tile the data and the two rules could not be told apart);
//   - llama-q8_0-align64: llama-q8_0 rewritten with a 64-byte alignment
//     (and two decoy keys, see alignDupKey), a general.alignment the
//     fingerprint has to honour to find the data section.
func fingerprintModels(t *testing.T) map[string]string {
	t.Helper()
	f32, q8 := fixtureModels(t)
	fpOnce.Do(func() {
		dir := filepath.Dir(f32)
		m := map[string]string{"llama-f32": f32, "llama-q8_0": q8}
		gen := func(name string, cfg fixture.Config, ftype int) error {
			src := filepath.Join(dir, name+"-src.gguf")
			if err := fixture.Generate(cfg, src); err != nil {
				return err
			}
			dst := filepath.Join(dir, name+".gguf")
			if err := llamacpp.QuantizeModel(src, dst, ftype, 2); err != nil {
				return err
			}
			m[name] = dst
			return os.Remove(src)
		}
		qwen2 := fixture.Default("qwen2")
		qwen2.Tied = true
		if fpErr = gen("qwen2-q4_k_m", qwen2, 15); fpErr != nil { // LLAMA_FTYPE_MOSTLY_Q4_K_M
			return
		}
		qwen3 := fixture.Default("qwen3")
		qwen3.Layers, qwen3.Heads, qwen3.KVHeads, qwen3.HeadDim, qwen3.FF = 1, 2, 1, 3000, 256
		if fpErr = gen("qwen3-f16-wide", qwen3, 1); fpErr != nil { // LLAMA_FTYPE_MOSTLY_F16
			return
		}
		a64 := filepath.Join(dir, "llama-q8_0-align64.gguf")
		if fpErr = realign(q8, a64, 64); fpErr != nil {
			return
		}
		m["llama-q8_0-align64"] = a64
		fpModels = m
	})
	if fpErr != nil {
		t.Fatalf("fingerprint fixtures: %v", fpErr)
	}
	return fpModels
}

// realign rewrites the GGUF file src as dst with data alignment align,
// adding the decoy keys alignDupKey and alignArrayKey.
func realign(src, dst string, align uint32) error {
	f, err := gguf.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	kvs := append([]gguf.KV(nil), f.KVs...)
	kvs = append(kvs, gguf.NewKV(gguf.KeyAlignment, align), gguf.NewKV(alignDupKey, align), gguf.NewKV(alignArrayKey, []uint32{align, align}))
	var ts []gguf.WriteTensor
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		data, err := f.TensorData(ti)
		if err != nil {
			return err
		}
		ts = append(ts, gguf.WriteTensor{Name: ti.Name, Ne: ti.Ne, Type: ti.Type, Data: data})
	}
	return gguf.WriteFile(dst, kvs, ts, uint64(align))
}

// runC runs the C dumper on modelPath with token 1, writing to out, and
// returns its exit status and what it wrote to stderr (when that can be
// captured).
func runC(t *testing.T, modelPath, out string) (rc int, stderr string, captured bool) {
	t.Helper()
	stderr, captured = captureStderr(t, func() {
		rc = cdump.Main("layerdiff-dump", "-m", modelPath, "-o", out, "--threads", "2", "-t", "1")
	})
	return rc, stderr, captured
}

// modelBlock returns the text of the "model" object of the manifest in dir.
func modelBlock(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, reference.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n  \"model\": {")
	j := strings.Index(s[max(i, 0):], "\n  },")
	if i < 0 || j < 0 {
		t.Fatalf("%s: no model object in\n%s", dir, s)
	}
	return s[i : i+j]
}

// TestFingerprintMatchesGo dumps fixture models of three architectures,
// five tensor-type mixes and two alignments (and shared/llamacpp/S-Q8_0.gguf when present)
// with the C dumper and checks that model.fingerprint is
// reference.ModelFingerprint of the file, and that the manifest's "model"
// object is, byte for byte, the one layerdiff's dumper writes (same fields
// in the same order and layout, fingerprint between sha256 and
// architecture).
func TestFingerprintMatchesGo(t *testing.T) {
	models := fingerprintModels(t)
	names := []string{"llama-f32", "llama-q8_0", "qwen2-q4_k_m", "qwen3-f16-wide", "llama-q8_0-align64"}
	if p := sharedFile("llamacpp/S-Q8_0.gguf"); p != "" {
		models["shared-S-Q8_0"] = p
		names = append(names, "shared-S-Q8_0")
	}

	// The fixtures cover what they are meant to: data hashed whole, of
	// fewer and of more than two samples' bytes, and data sampled.
	const s = reference.FingerprintSample
	f, err := gguf.Open(models["qwen3-f16-wide"])
	if err != nil {
		t.Fatal(err)
	}
	small, wide, sampled := false, false, false
	for _, ti := range f.Tensors {
		small = small || ti.Size < s
		wide = wide || ti.Size > 2*s && ti.Size < 3*s
		sampled = sampled || ti.Size > 3*s
	}
	f.Close()
	if !small || !wide || !sampled {
		t.Fatalf("qwen3-f16-wide: tensors of < %d bytes: %v, of %d to %d bytes: %v, of > %d bytes: %v", s, small, 2*s, 3*s, wide, 3*s, sampled)
	}

	seen := map[string]string{}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			path := models[name]
			want, err := reference.ModelFingerprint(path)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			cOut, goOut := filepath.Join(dir, "c"), filepath.Join(dir, "go")
			if rc, msg, _ := runC(t, path, cOut); rc != 0 {
				t.Fatalf("C dumper exited with %d:\n%s", rc, msg)
			}
			cm, err := reference.ReadManifest(cOut)
			if err != nil {
				t.Fatal(err)
			}
			if cm.Model.Fingerprint != want {
				t.Errorf("C fingerprint %q, reference.ModelFingerprint %q", cm.Model.Fingerprint, want)
			}
			if other, dup := seen[want]; dup {
				t.Errorf("same fingerprint as %s", other)
			}
			seen[want] = name
			if _, err := reference.DumpLlamaCpp(reference.DumpOptions{Model: path, Tokens: []int32{1}, Out: goOut, Threads: 2, Version: "test"}); err != nil {
				t.Fatal(err)
			}
			if c, g := modelBlock(t, cOut), modelBlock(t, goOut); c != g {
				t.Errorf("model objects differ:\nC:%s\nGo:%s", c, g)
			}
		})
	}
}

// infoField locates the fields of tensor info ti in the GGUF bytes b of f.
type infoField struct {
	nameLen, nDims, ne, typ, offset int // byte offsets in b
}

func tensorInfoAt(t *testing.T, b []byte, f *gguf.File, ti *gguf.TensorInfo) infoField {
	t.Helper()
	rec := binary.LittleEndian.AppendUint64(nil, uint64(len(ti.Name)))
	rec = append(rec, ti.Name...)
	at := bytes.LastIndex(b[:f.DataOffset], rec)
	if at < 0 {
		t.Fatalf("tensor info of %q not found", ti.Name)
	}
	nd := at + len(rec)
	ne := nd + 4
	typ := ne + 8*len(ti.Ne)
	return infoField{nameLen: at, nDims: nd, ne: ne, typ: typ, offset: typ + 4}
}

// kvTypeAt returns the offset of the value type of metadata key in b.
func kvTypeAt(t *testing.T, b []byte, key string) int {
	t.Helper()
	rec := binary.LittleEndian.AppendUint64(nil, uint64(len(key)))
	rec = append(rec, key...)
	at := bytes.Index(b, rec)
	if at < 0 {
		t.Fatalf("key %q not found", key)
	}
	return at + len(rec)
}

// damageCase is a damaged copy of a model and, when the C dumper must
// reject it itself, a part of its message.
type damageCase struct {
	name string
	data []byte
	want string // "" for cuts: whatever both readers make of it
}

// checkDamaged runs the C dumper on c.data. When reference.ModelFingerprint
// rejects the file, the C dumper must fail (exit 1, nothing written) with a
// message of its own, naming the file, before llama.cpp loads it. When
// reference.ModelFingerprint accepts it, the C dumper must not reject it
// itself: it either writes a dump with that fingerprint or fails in
// llama.cpp.
func checkDamaged(t *testing.T, dir string, c damageCase) {
	t.Helper()
	p := filepath.Join(dir, "damaged.gguf")
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(p, c.data, 0o644); err != nil {
		t.Fatal(err)
	}
	want, goErr := reference.ModelFingerprint(p)
	if c.want != "" && goErr == nil {
		t.Fatalf("%s: reference.ModelFingerprint accepts the file", c.name)
	}
	rc, msg, captured := runC(t, p, out)
	fromLlama := strings.Contains(msg, "llama.cpp could not load")
	if goErr != nil {
		if rc != 1 {
			t.Fatalf("%s: exit %d, want 1 (Go: %v)", c.name, rc, goErr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: %s was created", c.name, out)
		}
		if captured && (fromLlama || !strings.Contains(msg, "layerdiff-dump: ") || !strings.Contains(msg, p) || !strings.Contains(msg, c.want)) {
			t.Fatalf("%s: C message %q, want one of its own naming %s and containing %q (Go: %v)", c.name, msg, p, c.want, goErr)
		}
		return
	}
	switch {
	case rc == 0:
		m, err := reference.ReadManifest(out)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if m.Model.Fingerprint != want {
			t.Fatalf("%s: C fingerprint %q, reference.ModelFingerprint %q", c.name, m.Model.Fingerprint, want)
		}
		if err := os.RemoveAll(out); err != nil {
			t.Fatal(err)
		}
	case captured && !fromLlama:
		t.Fatalf("%s: exit %d with %q, but reference.ModelFingerprint accepts the file", c.name, rc, msg)
	}
}

// TestFingerprintDamaged cuts and patches the llama Q8_0 fixture (and its
// 64-byte aligned copy) and checks, with checkDamaged, that the C dumper
// rejects exactly what reference.ModelFingerprint rejects, with a clear
// message and without crashing: cuts at every byte of the tensor infos,
// throughout the metadata and inside every tensor's data, and patched
// counts, names, shapes, types, data offsets and alignments.
func TestFingerprintDamaged(t *testing.T) {
	models := fingerprintModels(t)
	dir := t.TempDir()
	load := func(name string) ([]byte, *gguf.File) {
		b, err := os.ReadFile(models[name])
		if err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Parse(bytes.NewReader(b), int64(len(b)), name)
		if err != nil {
			t.Fatal(err)
		}
		return b, f
	}
	b, f := load("llama-q8_0")
	patched := func(at int, v any) []byte {
		c := append([]byte(nil), b...)
		switch v := v.(type) {
		case uint32:
			binary.LittleEndian.PutUint32(c[at:], v)
		case uint64:
			binary.LittleEndian.PutUint64(c[at:], v)
		}
		return c
	}

	// Tensors to damage: the second (non-zero data offset), a matrix, a Q8_0 one.
	second := &f.Tensors[1]
	var matrix, q8 *gguf.TensorInfo
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if matrix == nil && len(ti.Ne) == 2 {
			matrix = ti
		}
		if q8 == nil && ti.Type == quant.Q8_0 {
			q8 = ti
		}
	}
	if matrix == nil || q8 == nil {
		t.Fatal("fixture has no matrix or no Q8_0 tensor")
	}
	s, m, q := tensorInfoAt(t, b, f, second), tensorInfoAt(t, b, f, matrix), tensorInfoAt(t, b, f, q8)
	cases := []damageCase{
		{"n_tensors", patched(8, uint64(1)<<40), "tensors cannot fit"},
		{"long name", patched(s.nameLen, uint64(64)), "longer than ggml's limit of 63"},
		{"n_dims 0", patched(s.nDims, uint32(0)), "n_dims 0, want 1 to 4"},
		{"n_dims 5", patched(s.nDims, uint32(5)), "n_dims 5, want 1 to 4"},
		{"negative ne", patched(s.ne, uint64(1)<<63), "is negative"},
		{"zero ne[1]", patched(m.ne+8, uint64(0)), "ne[1] = 0"},
		{"unknown type", patched(s.typ, uint32(9999)), "unknown tensor type 9999"},
		{"removed type", patched(s.typ, uint32(4)), "unknown tensor type 4"},
		{"partial block", patched(q.ne, uint64(33)), "not a multiple of the block size 32"},
		{"misaligned offset", patched(s.offset, f.Tensors[1].Offset+1), "not a multiple of the alignment 32"},
		{"offset gap", patched(s.offset, f.Tensors[1].Offset+32), "tensor data must follow in info order"},
	}
	huge := patched(m.ne, uint64(1)<<40)
	binary.LittleEndian.PutUint64(huge[m.ne+8:], uint64(1)<<40)
	cases = append(cases, damageCase{"overflowing shape", huge, "overflows int64"})

	// Cuts: every byte of the tensor infos, a stride through the metadata,
	// and inside, at the end of and after every tensor's data.
	infoStart := tensorInfoAt(t, b, f, &f.Tensors[0]).nameLen
	cut := func(n int64) {
		cases = append(cases, damageCase{name: "cut at " + strconv.FormatInt(n, 10), data: b[:n]})
	}
	for n := int64(0); n < int64(infoStart); n += 61 {
		cut(n)
	}
	for n := int64(infoStart); n <= f.DataOffset; n++ {
		cut(n)
	}
	for _, ti := range f.Tensors {
		start := f.DataOffset + int64(ti.Offset)
		cut(start + 1)
		cut(start + ti.Size/2)
		cut(start + ti.Size - 1)
	}
	last := f.Tensors[len(f.Tensors)-1]
	if end := f.DataOffset + int64(last.Offset) + last.Size; end < int64(len(b)) {
		cut(end) // padding cut off: still a valid model, with another fingerprint
	}

	// Alignment: not a power of two, not a u32, given twice, an array.
	a, af := load("llama-q8_0-align64")
	at := kvTypeAt(t, a, gguf.KeyAlignment)
	patchA := func(fn func(c []byte)) []byte {
		c := append([]byte(nil), a...)
		fn(c)
		return c
	}
	renameKey := func(c []byte, from, to string) {
		rec := binary.LittleEndian.AppendUint64(nil, uint64(len(from)))
		i := bytes.Index(c, append(rec, from...))
		if i < 0 {
			t.Fatalf("key %q not found", from)
		}
		copy(c[i+len(rec):], to)
	}
	cases = append(cases,
		damageCase{"alignment 48", patchA(func(c []byte) { binary.LittleEndian.PutUint32(c[at+4:], 48) }), "general.alignment 48 is not a power of two"},
		damageCase{"alignment i32", patchA(func(c []byte) { binary.LittleEndian.PutUint32(c[at:], 5) }), "general.alignment has type i32, want u32"},
		damageCase{"alignment twice", patchA(func(c []byte) { renameKey(c, alignDupKey, gguf.KeyAlignment) }), "general.alignment appears 2 times"},
		damageCase{"alignment array", patchA(func(c []byte) {
			renameKey(c, gguf.KeyAlignment, "general.alignmenZ")
			renameKey(c, alignArrayKey, gguf.KeyAlignment)
		}), "general.alignment has type array, want u32"},
		damageCase{"align64 data cut", a[:af.DataOffset+int64(af.Tensors[0].Size)/2], "beyond the end of the file"},
	)

	for _, c := range cases {
		checkDamaged(t, dir, c)
	}
}
