// Package capture holds layerdiff's capture kits for other engines — a
// Python one (python/layerdiff_capture.py, numpy only, with a PyTorch hook
// recorder) and a Rust crate (rust/, no dependencies) — and a third-party
// float32 numpy LLaMA engine (python/examples/numpy_llama.py) used to test
// layerdiff against an engine that is not llama.cpp. See docs/engines.md.
//
// The package has no Go API: its tests build and run the kits and read
// what they write with pkg/reference.
package capture
