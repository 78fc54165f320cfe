package forward

import (
	"errors"
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// Arch is a supported model architecture (general.architecture).
type Arch string

// RoPE modes (ggml's GGML_ROPE_TYPE_*).
const (
	RopeNorm = 0 // pairs (x[2i], x[2i+1])
	RopeNeox = 2 // pairs (x[i], x[i+n_dims/2])
)

// ErrUnsupported is wrapped by the errors Load returns for models it cannot
// run (architecture, tensor type, hyperparameter).
var ErrUnsupported = errors.New("unsupported model")

// Hparams are the hyperparameters as llama.cpp's load_hparams and
// llama_context read them, with the same defaults.
type Hparams struct {
	Arch        Arch
	NCtxTrain   int     // {arch}.context_length
	NEmbd       int     // {arch}.embedding_length
	NLayer      int     // {arch}.block_count
	NHead       int     // {arch}.attention.head_count
	NHeadKV     int     // {arch}.attention.head_count_kv, default NHead
	NFF         int     // {arch}.feed_forward_length
	HeadDimK    int     // {arch}.attention.key_length, default NEmbd/NHead
	HeadDimV    int     // {arch}.attention.value_length, default NEmbd/NHead
	NRot        int     // {arch}.rope.dimension_count, default HeadDimK
	NormRMSEps  float32 // {arch}.attention.layer_norm_rms_epsilon (required)
	RopeType    int     // RopeNorm (llama) or RopeNeox (the others): the architecture's
	RopeBase    float32 // {arch}.rope.freq_base, default 10000
	RopeScale   float32 // 1/{arch}.rope.scaling.factor (linear), default 1
	RopeScaling string  // {arch}.rope.scaling.type, default "linear"
	NCtxOrig    int     // {arch}.rope.scaling.original_context_length, default NCtxTrain
	AttnFactor  float32 // RoPE attn_factor: {arch}.rope.scaling.attn_factor (default 1), with YaRN times llama_context's yarn_attn_factor
	// RopeExtFactor is YaRN's extrapolation mix (1 with rope scaling
	// "yarn", 0 otherwise); YarnBetaFast and YarnBetaSlow bound its ramp
	// (32 and 1, llama.cpp's defaults).
	RopeExtFactor, YarnBetaFast, YarnBetaSlow float32
	NVocab                                    int // rows of token_embd.weight
	// gemma2, gemma3 (swa.go): interleaved sliding-window attention and
	// logit soft-capping, llama_hparams' n_swa, swa_layers,
	// f_attn_logit_softcapping, f_final_logit_softcapping,
	// f_attention_scale and rope_freq_base_train_swa.
	NSWA         int     // {arch}.attention.sliding_window; 0: no SWA layers
	SWALayers    []bool  // SWALayers[il]: layer il attends through the window
	AttnSoftcap  float32 // soft-capping of the attention logits; 0: none
	FinalSoftcap float32 // soft-capping of the output logits; 0: none
	QueryScale   float32 // Q is scaled by it before attention (kq_scale 1); 0: not
	RopeBaseSWA  float32 // RoPE base of the SWA layers; 0: RopeBase
	RopeScaleSWA float32 // RoPE frequency scale of the SWA layers, with RopeBaseSWA
	// RopeFreqs is rope_freqs.weight (Llama 3.1 and later), nil if absent.
	RopeFreqs []float32
	// Mixtures of experts (0 experts: a dense FFN).
	NExpert     int // {arch}.expert_count
	NExpertUsed int // {arch}.expert_used_count
	NFFExp      int // the experts' width: {arch}.expert_feed_forward_length (qwen3moe, gpt-oss), {arch}.feed_forward_length (llama, required there)
}

// Layer holds the tensors of one block. Optional tensors are nil.
type Layer struct {
	AttnNorm, Wq, Wk, Wv, Wo *gguf.TensorInfo
	Bq, Bk, Bv, Bo           *gguf.TensorInfo
	QNorm, KNorm             *gguf.TensorInfo // qwen3
	FFNNorm                  *gguf.TensorInfo
	FFNGate, FFNUp, FFNDown  *gguf.TensorInfo
	FFNGateB, FFNUpB         *gguf.TensorInfo
	FFNDownB                 *gguf.TensorInfo
	// mixtures of experts: the router {n_embd, n_expert} and the experts
	// {n_embd, n_ff_exp, n_expert} (down: {n_ff_exp, n_embd, n_expert})
	FFNGateInp, FFNGateExps, FFNUpExps, FFNDownExps *gguf.TensorInfo
	// Extra holds every tensor of the block by its name without "blk.N."
	// ("attn_post_norm.weight"): the fields above and the family-specific
	// ones (Tensor).
	Extra map[string]*gguf.TensorInfo
}

// Model is a loaded model: hyperparameters and the tensor infos of a GGUF
// file whose data stays mapped (rows are read and dequantized on the fly).
type Model struct {
	File       *gguf.File
	Hparams    Hparams
	TokEmbd    *gguf.TensorInfo
	OutputNorm *gguf.TensorInfo
	// Output is output.weight, or token_embd.weight when the model ties
	// them (TiedOutput).
	Output     *gguf.TensorInfo
	OutputB    *gguf.TensorInfo // qwen2 output.bias, usually nil
	TiedOutput bool
	Layers     []Layer

	arch    *architecture
	variant *Variant // set on the copy withVariant makes
}

// maxLayers is LLAMA_MAX_LAYERS: llama.cpp refuses more blocks.
const maxLayers = 512

// maxDim bounds every hyperparameter so that products stay far from int
// overflow; real models are orders of magnitude smaller.
const maxDim = 1 << 24

// Load reads the hyperparameters and tensor infos of f. It checks every
// tensor's presence, shape and type, and returns an error naming the first
// problem (wrapping ErrUnsupported for unsupported models).
func Load(f *gguf.File) (*Model, error) {
	if f == nil {
		return nil, errors.New("forward: Load of a nil file")
	}
	arch := f.Arch()
	if arch == "" {
		return nil, fmt.Errorf("%s: no general.architecture: %w", f.Path, ErrUnsupported)
	}
	a, ok := lookupArch(arch)
	if !ok {
		return nil, fmt.Errorf("%s: architecture %q: %w (supported: %s)", f.Path, arch, ErrUnsupported, archList())
	}
	m := &Model{File: f, arch: a}
	if err := m.loadHparams(Arch(arch)); err != nil {
		return nil, err
	}
	if err := m.loadTensors(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Model) key(k string) string { return string(m.Hparams.Arch) + "." + k }

// getUint reads an unsigned integer key into dst; absent keys keep dst and
// return false (unless required).
func (m *Model) getUint(k string, dst *int, required bool) error {
	key := m.key(k)
	if !m.File.Has(key) {
		if required {
			return fmt.Errorf("%s: missing metadata key %s", m.File.Path, key)
		}
		return nil
	}
	v, err := m.File.Uint(key)
	if err != nil {
		// llama.cpp accepts arrays for some keys (per-layer counts);
		// take the value of layer 0 when all layers agree.
		vs, aerr := m.File.Int32s(key)
		if aerr != nil || len(vs) == 0 {
			return fmt.Errorf("%s: metadata %s: %w", m.File.Path, key, err)
		}
		if n := m.Hparams.NLayer; n > 0 && len(vs) != n {
			// llama.cpp's get_key_or_arr: one value per layer
			return fmt.Errorf("%s: metadata %s has %d values for %d layers", m.File.Path, key, len(vs), n)
		}
		if vs[0] < 0 {
			return fmt.Errorf("%s: metadata %s = %d is negative", m.File.Path, key, vs[0])
		}
		for _, x := range vs {
			if x != vs[0] {
				return fmt.Errorf("%s: metadata %s varies across layers (%v): %w", m.File.Path, key, vs, ErrUnsupported)
			}
		}
		v = uint64(vs[0])
	}
	if v > maxDim {
		return fmt.Errorf("%s: metadata %s = %d is out of range", m.File.Path, key, v)
	}
	*dst = int(v)
	return nil
}

func (m *Model) getFloat(k string, dst *float32, required bool) error {
	key := m.key(k)
	if !m.File.Has(key) {
		if required {
			return fmt.Errorf("%s: missing metadata key %s", m.File.Path, key)
		}
		return nil
	}
	v, err := m.File.Float(key)
	if err != nil {
		return fmt.Errorf("%s: metadata %s: %w", m.File.Path, key, err)
	}
	*dst = float32(v)
	return nil
}

func (m *Model) loadHparams(arch Arch) error {
	h := &m.Hparams
	h.Arch = arch
	for _, k := range []struct {
		name     string
		dst      *int
		required bool
	}{
		{"context_length", &h.NCtxTrain, true},
		{"embedding_length", &h.NEmbd, true},
		{"block_count", &h.NLayer, true},
		{"feed_forward_length", &h.NFF, false},
		{"attention.head_count", &h.NHead, false},
	} {
		if err := m.getUint(k.name, k.dst, k.required); err != nil {
			return err
		}
	}
	if h.NHead <= 0 {
		return fmt.Errorf("%s: %s is %d: %w", m.File.Path, m.key("attention.head_count"), h.NHead, ErrUnsupported)
	}
	h.NHeadKV = h.NHead
	if err := m.getUint("attention.head_count_kv", &h.NHeadKV, false); err != nil {
		return err
	}
	if h.NHeadKV <= 0 || h.NHead%h.NHeadKV != 0 {
		return fmt.Errorf("%s: %d heads are not a multiple of %d KV heads", m.File.Path, h.NHead, h.NHeadKV)
	}
	if h.NLayer > maxLayers {
		return fmt.Errorf("%s: %s = %d: more than llama.cpp's %d layers", m.File.Path, m.key("block_count"), h.NLayer, maxLayers)
	}
	if h.NEmbd <= 0 || h.NLayer <= 0 {
		return fmt.Errorf("%s: embedding length %d, block count %d", m.File.Path, h.NEmbd, h.NLayer)
	}
	h.HeadDimK = h.NEmbd / h.NHead
	h.HeadDimV = h.NEmbd / h.NHead
	if err := m.getUint("attention.key_length", &h.HeadDimK, false); err != nil {
		return err
	}
	if err := m.getUint("attention.value_length", &h.HeadDimV, false); err != nil {
		return err
	}
	h.NRot = h.HeadDimK
	if err := m.getUint("rope.dimension_count", &h.NRot, false); err != nil {
		return err
	}
	// every builder here assumes these (llama.cpp's assert them).
	if h.HeadDimK != h.HeadDimV || h.NRot != h.HeadDimK {
		return fmt.Errorf("%s: key length %d, value length %d, rope dimensions %d differ: %w", m.File.Path, h.HeadDimK, h.HeadDimV, h.NRot, ErrUnsupported)
	}
	if h.HeadDimK <= 0 || h.HeadDimK%2 != 0 {
		return fmt.Errorf("%s: head dimension %d is not even", m.File.Path, h.HeadDimK)
	}
	if err := m.getFloat("attention.layer_norm_rms_epsilon", &h.NormRMSEps, true); err != nil {
		return err
	}
	h.RopeBase = 10000
	if err := m.getFloat("rope.freq_base", &h.RopeBase, false); err != nil {
		return err
	}
	h.RopeScaling = "linear"
	if key := m.key("rope.scaling.type"); m.File.Has(key) {
		s, err := m.File.String(key)
		if err != nil {
			return fmt.Errorf("%s: metadata %s: %w", m.File.Path, key, err)
		}
		h.RopeScaling = s
	}
	switch h.RopeScaling {
	case "none", "linear", "yarn":
	default:
		return fmt.Errorf("%s: rope scaling %q: %w (supported: none, linear, yarn, and llama3 frequency factors)", m.File.Path, h.RopeScaling, ErrUnsupported)
	}
	var ropeScale float32
	if err := m.getFloat("rope.scaling.factor", &ropeScale, false); err != nil {
		return err
	}
	if ropeScale == 0 {
		if err := m.getFloat("rope.scale_linear", &ropeScale, false); err != nil {
			return err
		}
	}
	if !(ropeScale >= 0) || math.IsInf(float64(ropeScale), 0) {
		return fmt.Errorf("%s: rope scaling factor %g is not a positive number", m.File.Path, ropeScale)
	}
	h.RopeScale = 1
	if ropeScale != 0 {
		h.RopeScale = 1 / ropeScale
	}
	if h.RopeScaling == "none" {
		h.RopeScale = 1
	}
	h.NCtxOrig = h.NCtxTrain
	if err := m.getUint("rope.scaling.original_context_length", &h.NCtxOrig, false); err != nil {
		return err
	}
	if h.NCtxOrig == 0 {
		h.NCtxOrig = h.NCtxTrain
	}
	h.AttnFactor = 1
	if err := m.getFloat("rope.scaling.attn_factor", &h.AttnFactor, false); err != nil {
		return err
	}
	h.YarnBetaFast, h.YarnBetaSlow = 32, 1
	if h.RopeScaling == "yarn" {
		// llama_context: yarn_ext_factor 1, yarn_attn_factor from the
		// scale (llama.cpp reads rope.scaling.yarn_log_multiplier only for
		// DeepSeek-2-like architectures, none of these)
		h.RopeExtFactor = 1
		h.AttnFactor = yarnAttnFactor(h.RopeScale) * h.AttnFactor
	}
	h.RopeType = m.arch.ropeType
	if err := m.loadExperts(); err != nil {
		return err
	}
	if m.arch.hparams != nil {
		return m.arch.hparams(m)
	}
	return nil
}

// supportedWeight reports the weight types the ggml numerics implement.
func supportedWeight(t quant.Type) bool {
	switch t {
	case quant.F32, quant.F16, quant.BF16, quant.Q4_0, quant.Q4_1, quant.Q5_0, quant.Q5_1, quant.Q8_0,
		quant.Q2_K, quant.Q3_K, quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.IQ4_NL, quant.IQ4_XS,
		quant.IQ3_XXS, quant.IQ3_S, quant.TQ1_0, quant.TQ2_0, quant.MXFP4,
		quant.IQ2_XXS, quant.IQ2_XS, quant.IQ2_S, quant.IQ1_S, quant.IQ1_M:
		return true
	}
	return false
}

func (m *Model) tensor(name string, required bool, ne ...int64) (*gguf.TensorInfo, error) {
	ti, ok := m.File.Tensor(name)
	if !ok {
		if required {
			return nil, fmt.Errorf("%s: missing tensor %q", m.File.Path, name)
		}
		return nil, nil
	}
	want := ne
	got := ti.Ne
	for len(got) > len(want) && got[len(got)-1] == 1 {
		got = got[:len(got)-1]
	}
	if len(got) != len(want) {
		return nil, fmt.Errorf("%s: tensor %q has shape %v, want %v", m.File.Path, name, ti.Ne, want)
	}
	for i := range want {
		if got[i] != want[i] {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, want %v", m.File.Path, name, ti.Ne, want)
		}
	}
	if !supportedWeight(ti.Type) {
		return nil, fmt.Errorf("%s: tensor %q has type %s: %w", m.File.Path, name, ti.Type, ErrUnsupported)
	}
	if ti.Type.BlockSize() > 1 && ne[0]%int64(ti.Type.BlockSize()) != 0 {
		return nil, fmt.Errorf("%s: tensor %q: row of %d values is not a multiple of the %s block size", m.File.Path, name, ne[0], ti.Type)
	}
	if _, err := m.File.TensorData(ti); err != nil {
		return nil, err
	}
	return ti, nil
}

// f32Tensor requires a small F32 tensor (norm weights, biases).
func (m *Model) f32Tensor(name string, required bool, ne ...int64) (*gguf.TensorInfo, error) {
	ti, err := m.tensor(name, required, ne...)
	if err != nil || ti == nil {
		return ti, err
	}
	if ti.Type != quant.F32 {
		return nil, fmt.Errorf("%s: tensor %q has type %s, want f32: %w", m.File.Path, name, ti.Type, ErrUnsupported)
	}
	return ti, nil
}

func (m *Model) loadTensors() error {
	h := &m.Hparams
	emb, ok := m.File.Tensor("token_embd.weight")
	if !ok {
		return fmt.Errorf("%s: missing tensor %q", m.File.Path, "token_embd.weight")
	}
	if len(emb.Ne) < 2 || emb.Ne[0] != int64(h.NEmbd) || emb.Ne[1] <= 0 || emb.Ne[1] > maxDim {
		return fmt.Errorf("%s: tensor %q has shape %v, want {%d, n_vocab}", m.File.Path, "token_embd.weight", emb.Ne, h.NEmbd)
	}
	h.NVocab = int(emb.Ne[1])
	E, V := int64(h.NEmbd), int64(h.NVocab)
	var err error
	if m.TokEmbd, err = m.tensor("token_embd.weight", true, E, V); err != nil {
		return err
	}
	if m.OutputNorm, err = m.f32Tensor("output_norm.weight", true, E); err != nil {
		return err
	}
	if m.Output, err = m.tensor("output.weight", false, E, V); err != nil {
		return err
	}
	if m.Output == nil {
		m.Output, m.TiedOutput = m.TokEmbd, true
	}
	if m.arch.globals != nil {
		if err := m.arch.globals(m); err != nil {
			return err
		}
	}
	if h.NFF <= 0 {
		// llama.cpp reads n_ff from the tensor when the key is absent
		if t, ok := m.File.Tensor("blk.0.ffn_up.weight"); ok && len(t.Ne) >= 2 && t.Ne[1] > 0 && t.Ne[1] <= maxDim {
			h.NFF = int(t.Ne[1])
		}
	}
	m.Layers = make([]Layer, h.NLayer)
	for il := range m.Layers {
		if err := m.loadLayer(il, m.arch.tensors(m, il)); err != nil {
			return err
		}
	}
	return nil
}

// blockDims returns block il and the dimensions its tensors have: the
// embedding, the Q and the K/V projection widths, the FFN width.
func (m *Model) blockDims(il int) (L *Layer, e, q, kv, ff int64) {
	h := &m.Hparams
	hd := int64(h.HeadDimK)
	return &m.Layers[il], int64(h.NEmbd), hd * int64(h.NHead), hd * int64(h.NHeadKV), int64(h.NFF)
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
