package forward

// architectures is the registry of model families, one file each
// (arch_<name>.go). Adding a family is its file plus its line here.
var architectures = []*architecture{
	llama,
	qwen2,
	qwen3,
	gemma2,
	gemma3,
	phi3,
	qwen3moe, // issue #16: mixtures of experts
	gptoss,   // issue #16: gpt-oss
}
