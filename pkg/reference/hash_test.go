package reference

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/fixture"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// fpConfig is a small fixture: token_embd.weight (75 KiB) and the 16 KiB
// attention matrices are sampled, the 256-byte norm weights hashed whole.
func fpConfig(seed uint64) fixture.Config {
	c := fixture.Default("llama")
	c.Seed, c.Embd, c.FF, c.Heads, c.KVHeads, c.VocabSize = seed, 64, 128, 4, 2, 300
	return c
}

// fpBuild returns the metadata and tensors of fpConfig(seed).
func fpBuild(t *testing.T, seed uint64) ([]gguf.KV, []gguf.WriteTensor) {
	t.Helper()
	kvs, ts, err := fixture.Build(fpConfig(seed))
	if err != nil {
		t.Fatal(err)
	}
	return kvs, ts
}

// fpWrite writes a GGUF file and returns its path.
func fpWrite(t *testing.T, dir, name string, kvs []gguf.KV, ts []gguf.WriteTensor) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := gguf.WriteFile(p, kvs, ts, 32); err != nil {
		t.Fatal(err)
	}
	return p
}

// fpTensor returns the tensor called name.
func fpTensor(t *testing.T, ts []gguf.WriteTensor, name string) *gguf.WriteTensor {
	t.Helper()
	for i := range ts {
		if ts[i].Name == name {
			return &ts[i]
		}
	}
	t.Fatalf("fixture has no tensor %q", name)
	return nil
}

// f32s decodes little-endian float32 data.
func f32s(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// quantizeTensor re-types a F32 tensor to typ, its values first multiplied
// by scale.
func quantizeTensor(t *testing.T, wt *gguf.WriteTensor, typ quant.Type, scale float32) {
	t.Helper()
	v := f32s(wt.Data)
	for i := range v {
		v[i] *= scale
	}
	n, err := typ.RowBytes(int64(len(v)))
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, n)
	if err := quant.QuantizeRow(typ, v, dst, quant.QuantRef); err != nil {
		t.Fatal(err)
	}
	wt.Type, wt.Data = typ, dst
}

// flipByte writes a copy of src with the byte at off (from the start of
// tensor name's data) inverted, and returns its path.
func flipByte(t *testing.T, src, dst, name string, off int64) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("%s has no tensor %q", src, name)
	}
	if off >= ti.Size {
		t.Fatalf("offset %d beyond tensor %q (%d bytes)", off, name, ti.Size)
	}
	at := f.DataOffset + int64(ti.Offset) + off
	f.Close()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0xff
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// specFingerprint computes the fingerprint from the whole file in memory,
// straight from the documented byte stream, independently of
// FingerprintFile's reads.
func specFingerprint(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(bytes.NewReader(b), int64(len(b)), path)
	if err != nil {
		t.Fatal(err)
	}
	var s []byte
	s = binary.LittleEndian.AppendUint64(s, uint64(len(b)))
	s = append(s, b[:min(f.DataOffset, int64(len(b)))]...)
	for _, ti := range f.Tensors {
		s = binary.LittleEndian.AppendUint64(s, uint64(len(ti.Name)))
		s = append(s, ti.Name...)
		s = binary.LittleEndian.AppendUint32(s, uint32(ti.Type))
		s = binary.LittleEndian.AppendUint32(s, uint32(len(ti.Ne)))
		for _, d := range ti.Ne {
			s = binary.LittleEndian.AppendUint64(s, uint64(d))
		}
		s = binary.LittleEndian.AppendUint64(s, uint64(ti.Size))
		data := b[f.DataOffset+int64(ti.Offset):][:ti.Size]
		if len(data) <= 3*4096 {
			s = append(s, data...)
			continue
		}
		mid := (len(data) - 4096) / 2
		s = append(s, data[:4096]...)
		s = append(s, data[mid:mid+4096]...)
		s = append(s, data[len(data)-4096:]...)
	}
	sum := sha256.Sum256(s)
	return "v1:" + hex.EncodeToString(sum[:])
}

func TestFingerprintSamples(t *testing.T) {
	for _, c := range []struct {
		size int64
		want []span
	}{
		{0, []span{{0, 0}}},
		{1, []span{{0, 1}}},
		{4096, []span{{0, 4096}}},
		{3 * 4096, []span{{0, 3 * 4096}}},
		{3*4096 + 1, []span{{0, 4096}, {4096, 4096}, {8193, 4096}}},
		{3*4096 + 2, []span{{0, 4096}, {4097, 4096}, {8194, 4096}}},
		{1 << 30, []span{{0, 4096}, {(1<<30 - 4096) / 2, 4096}, {1<<30 - 4096, 4096}}},
	} {
		if got := fingerprintSamples(c.size); !reflect.DeepEqual(got, c.want) {
			t.Errorf("fingerprintSamples(%d) = %v, want %v", c.size, got, c.want)
		}
	}
}

// TestModelFingerprint holds the fingerprint of variants of one fixture
// against the original's: equal for the same content, different for every
// change it promises to see, equal for a change away from the samples (the
// documented blind spot).
func TestModelFingerprint(t *testing.T) {
	dir := t.TempDir()
	kvs, ts := fpBuild(t, 1)
	base := fpWrite(t, dir, "base.gguf", kvs, ts)
	const emb = "token_embd.weight" // 300×64 F32: 76800 bytes, sampled
	// Byte offsets inside token_embd.weight's data: its samples are
	// [0, 4096), [36352, 40448) and [72704, 76800).
	const size = 300 * 64 * 4
	mid := int64(size-4096) / 2

	cases := []struct {
		name string
		make func(t *testing.T, dir string) string
		same bool // the fingerprint equals base's
	}{
		{"same content, another file", func(t *testing.T, dir string) string {
			kvs, ts := fpBuild(t, 1)
			return fpWrite(t, dir, "copy.gguf", kvs, ts)
		}, true},
		{"different seed", func(t *testing.T, dir string) string {
			kvs, ts := fpBuild(t, 2)
			return fpWrite(t, dir, "seed2.gguf", kvs, ts)
		}, false},
		{"one tensor re-typed f32 to q8_0", func(t *testing.T, dir string) string {
			kvs, ts := fpBuild(t, 1)
			quantizeTensor(t, fpTensor(t, ts, "blk.0.attn_q.weight"), quant.Q8_0, 1)
			return fpWrite(t, dir, "retyped.gguf", kvs, ts)
		}, false},
		{"one tensor re-typed f32 to f16", func(t *testing.T, dir string) string {
			kvs, ts := fpBuild(t, 1)
			quantizeTensor(t, fpTensor(t, ts, "blk.1.ffn_up.weight"), quant.F16, 1)
			return fpWrite(t, dir, "f16.gguf", kvs, ts)
		}, false},
		{"one tensor re-quantized from other weights, same type and size", func(t *testing.T, dir string) string {
			// Both files hold blk.0.attn_q.weight as Q8_0; the second
			// quantized it from weights 0.1% larger.
			kvs, ts := fpBuild(t, 1)
			quantizeTensor(t, fpTensor(t, ts, "blk.0.attn_q.weight"), quant.Q8_0, 1)
			fpWrite(t, dir, "q8.gguf", kvs, ts)
			kvs2, ts2 := fpBuild(t, 1)
			quantizeTensor(t, fpTensor(t, ts2, "blk.0.attn_q.weight"), quant.Q8_0, 1.001)
			p := fpWrite(t, dir, "q8-requant.gguf", kvs2, ts2)
			a, err := ModelFingerprint(filepath.Join(dir, "q8.gguf"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := ModelFingerprint(p)
			if err != nil {
				t.Fatal(err)
			}
			if a == b {
				t.Errorf("re-quantized tensor: both fingerprints are %s", a)
			}
			return p
		}, false},
		{"one metadata value changed", func(t *testing.T, dir string) string {
			kvs, ts := fpBuild(t, 1)
			for i := range kvs {
				if kvs[i].Key == "llama.rope.freq_base" {
					kvs[i] = gguf.NewKV(kvs[i].Key, float32(10001))
				}
			}
			return fpWrite(t, dir, "rope.gguf", kvs, ts)
		}, false},
		{"one metadata key added", func(t *testing.T, dir string) string {
			kvs, ts := fpBuild(t, 1)
			kvs = append(kvs, gguf.NewKV("general.description", "x"))
			return fpWrite(t, dir, "key.gguf", kvs, ts)
		}, false},
		{"one byte changed in the first 4 KiB of a tensor", func(t *testing.T, dir string) string {
			return flipByte(t, base, filepath.Join(dir, "first.gguf"), emb, 4095)
		}, false},
		{"one byte changed in the middle sample", func(t *testing.T, dir string) string {
			return flipByte(t, base, filepath.Join(dir, "mid.gguf"), emb, mid+100)
		}, false},
		{"one byte changed in the last 4 KiB", func(t *testing.T, dir string) string {
			return flipByte(t, base, filepath.Join(dir, "last.gguf"), emb, size-1)
		}, false},
		{"one byte changed in a small tensor (hashed whole)", func(t *testing.T, dir string) string {
			return flipByte(t, base, filepath.Join(dir, "norm.gguf"), "blk.1.ffn_norm.weight", 130)
		}, false},
		{"blind spot: one byte changed between the first and middle samples", func(t *testing.T, dir string) string {
			return flipByte(t, base, filepath.Join(dir, "blind1.gguf"), emb, 4096)
		}, true},
		{"blind spot: one byte changed between the middle and last samples", func(t *testing.T, dir string) string {
			return flipByte(t, base, filepath.Join(dir, "blind2.gguf"), emb, mid+4096)
		}, true},
	}
	want, err := ModelFingerprint(base)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(want, "v1:") || len(want) != 3+64 {
		t.Fatalf("fingerprint %q: want \"v1:\" and 64 hex digits", want)
	}
	if spec := specFingerprint(t, base); want != spec {
		t.Fatalf("fingerprint %s, but the documented byte stream gives %s", want, spec)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.make(t, t.TempDir())
			got, err := ModelFingerprint(p)
			if err != nil {
				t.Fatal(err)
			}
			if spec := specFingerprint(t, p); got != spec {
				t.Errorf("fingerprint %s, but the documented byte stream gives %s", got, spec)
			}
			if (got == want) != c.same {
				t.Errorf("fingerprint %s, base %s: same = %v, want %v", got, want, got == want, c.same)
			}
		})
	}
}

// TestFingerprintFile checks that a file parsed from memory and the same
// file on disk have the same fingerprint.
func TestFingerprintFile(t *testing.T) {
	kvs, ts := fpBuild(t, 1)
	p := fpWrite(t, t.TempDir(), "m.gguf", kvs, ts)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(b)
	f, err := gguf.Parse(r, int64(len(b)), "mem")
	if err != nil {
		t.Fatal(err)
	}
	got, err := FingerprintFile(f, r)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ModelFingerprint(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("in memory %s, on disk %s", got, want)
	}
	// The reader shorter than the parsed file: an error naming it.
	f.Path = "short.gguf"
	if _, err := FingerprintFile(f, bytes.NewReader(b[:len(b)-10])); err == nil || !strings.Contains(err.Error(), "short.gguf") {
		t.Errorf("short reader: error %v, want one naming short.gguf", err)
	}
	if _, err := FingerprintFile(nil, r); err == nil {
		t.Error("nil file: no error")
	}
}

// TestModelFingerprintErrors checks that unreadable or invalid files fail
// with an error naming the file.
func TestModelFingerprintErrors(t *testing.T) {
	dir := t.TempDir()
	kvs, ts := fpBuild(t, 1)
	good, err := os.ReadFile(fpWrite(t, dir, "good.gguf", kvs, ts))
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(bytes.NewReader(good), int64(len(good)), "good")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte // nil: no file
		is   error  // matched by errors.Is, when set
	}{
		{"missing.gguf", nil, fs.ErrNotExist},
		{"empty.gguf", []byte{}, gguf.ErrFormat},
		{"not-gguf.gguf", []byte("this is not a GGUF file at all"), gguf.ErrFormat},
		{"cut-in-metadata.gguf", good[:f.DataOffset/2], gguf.ErrFormat},
		{"cut-in-data.gguf", good[:len(good)-100], gguf.ErrFormat},
		{"cut-before-data.gguf", good[:f.DataOffset], gguf.ErrFormat},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			if c.data != nil {
				if err := os.WriteFile(p, c.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fp, err := ModelFingerprint(p)
			if err == nil {
				t.Fatalf("no error (fingerprint %s)", fp)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
		})
	}
}
