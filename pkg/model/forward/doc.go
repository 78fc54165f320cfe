// Package forward runs LLaMA-family models (architectures llama, qwen2,
// qwen3, gemma2, gemma3, phi3, qwen3moe and gpt-oss, and llama's
// Mixtral-style mixtures of experts) in Go, reproducing llama.cpp's CPU arithmetic bit for
// bit and naming every activation as llama.cpp's compute graph does.
//
// # Use
//
//	f, err := model.Open("model.gguf") // weights stay mapped
//	m, err := forward.Load(f)          // hyperparameters and tensor checks
//	var c forward.Collector            // or any Recorder
//	logits, err := m.Run(tokens, forward.DefaultOptions(), &c)
//
// Run evaluates the tokens as one batch at positions 0..len-1 in an empty KV
// cache with every position an output, as layerdiff's llama.cpp dumps do.
// The graph is built with the same ggml constructor calls as llama.cpp's model
// builders, so the nodes a Recorder sees are exactly the nodes of llama.cpp's
// eval callback: same names (including views, " (copy)" and "node_N"), same
// ops, same shapes in ggml order, same order. A Recorder chooses what it keeps
// (Want is asked before a node's data is copied out): Filter selects by name,
// layer and token position; Collector keeps everything with dump-style keys.
// An Injector can replace any node's value before later nodes read it.
//
// # Architectures
//
// Each model family is one file, arch_<name>.go, the way llama.cpp keeps
// one builder per model in src/models: its RoPE mode, the metadata it reads
// beyond the common keys, the tensors of a block, and the graph builder
// (with the shared pieces of buildCtx: norms, projections, attention with
// the KV cache, the FFN, the output head). The registry in archs.go lists
// them; Archs reports it. Adding a family is its file, its line in the
// registry, and (for tests and demos) its fixture in package fixture, laid
// out the same way.
//
// gemma2 and gemma3 bring llama.cpp's interleaved sliding-window attention
// (swa.go: llama_kv_cache_iswa's two caches, a second k_idxs, v_idxs and
// kq_mask input, each layer's cache chosen by llama_hparams::is_swa), logit
// soft-capping (SCALE, TANH, SCALE nodes, and flash attention's
// logit_softcap), the GELU-gated FFN (GEGLU, through ggml's fp16 GELU
// table) and post-attention and post-FFN norms (ops_gemma.go,
// libm_tanh.go).
//
// phi3 (Phi-3 and Phi-3.5 mini and medium, arch_phi3.go) splits its fused
// attn_qkv output with views, scales Q by 1/√head_dim before an attention
// of scale 1, feeds its fused gate-up ffn_up (2·n_ff rows, the gate first)
// to the one-tensor ggml_swiglu, and ropes with rope_factors_short or,
// when the KV cache has more cells than rope.scaling.original_context_length,
// rope_factors_long (llama_model::get_rope_factors). Its sliding window is
// ignored, as llama.cpp ignores it.
//
// A mixture of experts (qwen3moe; llama with llama.expert_count > 0) is
// llama-graph.cpp's build_moe_ffn (graph_moe.go): the router's softmax,
// ARGSORT and its top-k view (libstdc++'s std::sort, ties included), the
// selected probabilities normalised (SUM_ROWS, CLAMP, DIV), MUL_MAT_ID for
// the experts' gate, up and down projections (ggml-cpu's vec_dot per
// column, or the repack buffers' GEMV), their SwiGLU, the weighting MUL and
// the sum over the experts' views.
//
// gpt-oss (arch_gptoss.go, llm_build_openai_moe_iswa) adds Q/K/V/output
// biases, per-head attention sinks (ops_gptoss.go: SOFT_MAX's src[2],
// FLASH_ATTN_EXT's src[4], one more logit in each row's softmax), iSWA
// with sliding and full layers alternating, YaRN RoPE, and
// build_moe_ffn's softmax-weight gating (experts picked by their biased
// logits, weighed by the SOFT_MAX of the picked ones), ADD_ID expert
// biases and the clamped SWIGLU_OAI (alpha 1.702, limit 7).
//
// # Numerics
//
// NumericsGGML (the default) is the arithmetic of the llama.cpp compiled into
// layerdiff (Version) on x86-64 with AVX2, FMA and F16C: activations
// quantized to each weight's vec_dot_type, the kernel ggml actually runs for
// each shape (AVX2 vec_dot, llamafile tinyBLAS), their lane structure and
// fused multiply-adds (including the ones GCC contracts), glibc's expf,
// sincosf, powf and tanhf, ggml's vectorised exp and SiLU, the F16 KV cache and the
// F16 flash-attention accumulator. On the test fixtures every tensor is
// bit-identical to llama.cpp's (docs/numerics.md lists what was covered and
// how). NumericsF64 computes every op in float64 from dequantized weights
// and unquantized activations: the exact reference against which llama.cpp's
// own error can be measured.
//
// On amd64 CPUs with AVX2, FMA and F16C the hot dot products (Q8_0·Q8_0,
// four activation columns per pass over a weight row; the Q4_K and Q6_K
// super-blocks) run in assembly (dot_amd64.s, detected at start-up); the
// integer sums are exact and the float lanes are accumulated in ggml's
// order, so they give the same bits as the portable Go kernels, which run
// elsewhere or with the build tag purego.
//
// Weights are read from the mapped file and dequantized row by row; only
// activations and the KV cache are allocated, and each activation is freed
// after its last use. Large ops run on Options.Threads goroutines; results do
// not depend on the thread count.
package forward
