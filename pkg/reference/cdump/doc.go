// Package cdump tests tools/llamacpp-dump/layerdiff-dump.c, the standalone C
// dumper that llama.cpp users compile against their own build to produce
// layerdiff dumps without Go.
//
// With the build tag llamacpp the package compiles that C file through cgo
// against the llama.cpp that layerdiff builds in (its main renamed), exposes
// it as [Main], and exposes some of its helpers (file names, JSON, .npy
// headers, gathering, statistics, SHA-256, GGUF metadata) so that tests can
// hold them against the Go implementation in pkg/reference. Without the tag
// the package is empty.
//
// layerdiff-dump.h in this directory is a symbolic link to the C file, so
// that the go command's build cache notices edits to it.
package cdump
