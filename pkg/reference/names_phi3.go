package reference

// hfRulesPhi3 is the "hf" map of Phi3ForCausalLM: its fused qkv_proj is
// llama.cpp's wqkv-L (Q, K, V rows in that order, as the GGUF stores
// them; phi3 ropes NEOX-style, as HF does, so nothing is permuted), its
// fused gate_up_proj is ffn_up-L (the gate half first, as both chunk it).
// o_proj is llama.cpp's unnamed output projection, matched as
// attn_out-L by layer, op and shape, as for qwen2.
func hfRulesPhi3() []nameRule {
	return []nameRule{
		{from: "model.embed_tokens", to: "inp_embd", op: "GET_ROWS"},
		{from: "model.layers.{L}.input_layernorm", to: "attn_norm-{L}", op: "MUL"},
		{from: "model.layers.{L}.self_attn.qkv_proj", to: "wqkv-{L}", op: "MUL_MAT"},
		{from: "model.layers.{L}.self_attn.o_proj", to: "attn_out-{L}", op: "MUL_MAT"},
		{from: "model.layers.{L}.post_attention_layernorm", to: "ffn_norm-{L}", op: "MUL"},
		{from: "model.layers.{L}.mlp.gate_up_proj", to: "ffn_up-{L}", op: "MUL_MAT"},
		{from: "model.layers.{L}.mlp.down_proj", to: "ffn_out-{L}", op: "MUL_MAT"},
		{from: "model.layers.{L}", to: "l_out-{L}", op: "ADD"},
		{from: "model.norm", to: "result_norm", op: "MUL"},
		{from: "lm_head", to: "result_output", op: "MUL_MAT"},
	}
}
