# Source this file to build or test the llama.cpp-backed parts of layerdiff by
# hand: it sets the cgo flags the Makefile uses (same flags = Go build cache hit).
#   . scripts/env.sh && go test -tags llamacpp ./pkg/llamacpp
# LAYERDIFF_CFLAGS overrides the C/C++ optimisation flags (default: native).
# LAYERDIFF_REPACK=1 builds ggml-cpu with -DGGML_USE_CPU_REPACK, as stock
# CMake builds of llama.cpp are: the CPU repack buffer type ("CPU_REPACK",
# system_info "REPACK = 1") and its interleaved Q4_0/Q4_K/IQ4_NL (and, with
# AVX-512, Q2_K) GEMV/GEMM kernels (kernel profiles x86-*-repack).
_ld_ollama=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null)
if [ -z "$_ld_ollama" ] || [ ! -d "$_ld_ollama" ]; then
	go mod download github.com/ollama/ollama
	_ld_ollama=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
fi
export CGO_ENABLED=1
export CGO_CPPFLAGS="-I${_ld_ollama}/llama/llama.cpp/include -I${_ld_ollama}/ml/backend/ggml/ggml/include"
if [ "${LAYERDIFF_REPACK:-}" = 1 ]; then
	CGO_CPPFLAGS="$CGO_CPPFLAGS -DGGML_USE_CPU_REPACK"
fi
export CGO_CFLAGS="${LAYERDIFF_CFLAGS:--O3 -march=native}"
export CGO_CXXFLAGS="${LAYERDIFF_CFLAGS:--O3 -march=native}"
unset _ld_ollama
