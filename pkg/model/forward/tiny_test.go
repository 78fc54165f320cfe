package forward

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// goldenTokens are the tokens of the golden graphs.
var goldenTokens = []int32{1, 300, 301, 302, 303, 304, 305, 306}

func goldenName(arch string, fa bool) string {
	return fmt.Sprintf("graph-%s-fa%v.txt", arch, fa)
}

// tinyConfig describes an in-memory test model.
type tinyConfig struct {
	arch                         string
	embd, layers, heads, kvHeads int
	ff, vocab, headDim           int
	weight                       quant.Type // F32, F16 or Q8_0 for the matrices
	tied, ropeFreqs, biases      bool
	omit                         string // a tensor or key to leave out
}

func defaultTiny(arch string) tinyConfig {
	return tinyConfig{arch: arch, embd: 256, layers: 2, heads: 4, kvHeads: 2, ff: 512, vocab: 512, weight: quant.F32}
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// tinyGGUF builds a GGUF file in memory with random weights.
func tinyGGUF(t testing.TB, c tinyConfig) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	hd := c.headDim
	if hd == 0 {
		hd = c.embd / c.heads
	}
	a := c.arch
	kvs := []gguf.KV{
		gguf.NewKV("general.architecture", a),
		gguf.NewKV(a+".context_length", uint32(512)),
		gguf.NewKV(a+".embedding_length", uint32(c.embd)),
		gguf.NewKV(a+".block_count", uint32(c.layers)),
		gguf.NewKV(a+".feed_forward_length", uint32(c.ff)),
		gguf.NewKV(a+".attention.head_count", uint32(c.heads)),
		gguf.NewKV(a+".attention.head_count_kv", uint32(c.kvHeads)),
		gguf.NewKV(a+".attention.layer_norm_rms_epsilon", float32(1e-5)),
		gguf.NewKV(a+".rope.freq_base", float32(10000)),
	}
	if c.headDim != 0 {
		kvs = append(kvs, gguf.NewKV(a+".attention.key_length", uint32(hd)), gguf.NewKV(a+".attention.value_length", uint32(hd)))
	}
	var keep []gguf.KV
	for _, kv := range kvs {
		if kv.Key != c.omit {
			keep = append(keep, kv)
		}
	}
	var ts []gguf.WriteTensor
	add := func(name string, typ quant.Type, ne ...int64) {
		if name == c.omit {
			return
		}
		n := int64(1)
		for _, d := range ne {
			n *= d
		}
		v := make([]float32, n)
		std := 1 / math.Sqrt(float64(ne[0]))
		for i := range v {
			v[i] = float32(rng.NormFloat64() * std)
			if len(ne) == 1 && typ == quant.F32 && name != "rope_freqs.weight" && !bytes.Contains([]byte(name), []byte("bias")) {
				v[i] = float32(1 + 0.1*rng.NormFloat64())
			}
			if name == "rope_freqs.weight" {
				v[i] = float32(1 + i%4)
			}
		}
		var data []byte
		switch typ {
		case quant.F32:
			data = f32Bytes(v)
		case quant.F16:
			data = make([]byte, 2*n)
			for i, x := range v {
				binary.LittleEndian.PutUint16(data[2*i:], quant.F32ToF16(x))
			}
		case quant.Q8_0:
			data = make([]byte, n/32*34)
			if err := quant.QuantizeRow(quant.Q8_0, v, data, quant.QuantRef); err != nil {
				t.Fatal(err)
			}
		}
		ts = append(ts, gguf.WriteTensor{Name: name, Ne: ne, Type: typ, Data: data})
	}
	E, V, F := int64(c.embd), int64(c.vocab), int64(c.ff)
	q, kv := int64(hd*c.heads), int64(hd*c.kvHeads)
	w := c.weight
	add("token_embd.weight", w, E, V)
	add("output_norm.weight", quant.F32, E)
	if !c.tied {
		add("output.weight", w, E, V)
	}
	if c.ropeFreqs {
		add("rope_freqs.weight", quant.F32, int64(hd/2))
	}
	for il := 0; il < c.layers; il++ {
		p := fmt.Sprintf("blk.%d.", il)
		add(p+"attn_norm.weight", quant.F32, E)
		add(p+"attn_q.weight", w, E, q)
		add(p+"attn_k.weight", w, E, kv)
		add(p+"attn_v.weight", w, E, kv)
		add(p+"attn_output.weight", w, q, E)
		if c.arch == "qwen2" || c.biases {
			add(p+"attn_q.bias", quant.F32, q)
			add(p+"attn_k.bias", quant.F32, kv)
			add(p+"attn_v.bias", quant.F32, kv)
		}
		if c.arch == "qwen3" {
			add(p+"attn_q_norm.weight", quant.F32, int64(hd))
			add(p+"attn_k_norm.weight", quant.F32, int64(hd))
		}
		add(p+"ffn_norm.weight", quant.F32, E)
		add(p+"ffn_gate.weight", w, E, F)
		add(p+"ffn_up.weight", w, E, F)
		add(p+"ffn_down.weight", w, F, E)
	}
	var buf bytes.Buffer
	if err := gguf.Write(&buf, keep, ts, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tinyModel loads a tinyGGUF.
func tinyModel(t testing.TB, c tinyConfig) *Model {
	t.Helper()
	b := tinyGGUF(t, c)
	f, err := gguf.Parse(bytes.NewReader(b), int64(len(b)), c.arch+"-tiny.gguf")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
