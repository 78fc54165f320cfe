# layerdiff — see README.md.
#
#   make build      bin/layerdiff with the in-build llama.cpp (native CPU flags)
#   make portable   the same, llama.cpp built for baseline x86-64 (LAYERDIFF_CFLAGS=-O3)
#   make test       every test, including those that run llama.cpp
#   make demo       the main job end to end on a generated model
#   make fuzz       every fuzz target for FUZZTIME each
#   make bench      benchmarks (see BENCHMARKS.md)
#   make bench7b    the 7B-geometry Q4_K_M scale check (see BENCHMARKS.md)
#   make bench-types  every weight type, Go against llama.cpp (BENCHMARKS.md)
#   make nightly    the regression matrix against fixtures/baselines (docs/nightly.md)
#
# REPACK=1 (make build REPACK=1, make test REPACK=1, ...) builds llama.cpp with
# the CPU repack buffers (-DGGML_USE_CPU_REPACK, as stock CMake builds do):
# kernel profiles x86-avx2-repack / x86-avx512-repack (docs/numerics.md).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
ENV := . scripts/env.sh &&
ifeq ($(REPACK),1)
export LAYERDIFF_REPACK := 1
endif
FUZZTIME ?= 30s
DEMO ?= out/demo

.PHONY: build portable test vet demo fuzz bench bench7b bench-types nightly clean

build:
	$(ENV) $(GO) build -tags llamacpp -o bin/layerdiff ./cmd/layerdiff

portable:
	LAYERDIFF_CFLAGS=-O3 $(MAKE) build

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(ENV) $(GO) vet -tags llamacpp ./...

test: vet
	$(ENV) $(GO) test -tags llamacpp -timeout 60m ./...
ifneq ($(REPACK),1)
	# the repack kernels' differential tests, against llama.cpp built with
	# the CPU repack buffers (a second build of it, kept in Go's cache)
	export LAYERDIFF_REPACK=1 && $(ENV) $(GO) test -tags llamacpp -timeout 30m -run 'Repack' ./pkg/model/forward
endif

demo: build
	scripts/demo.sh $(DEMO)

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

bench: build
	scripts/bench.sh

bench7b: build
	scripts/bench7b.sh

bench-types: build
	scripts/benchtypes.sh

nightly: build
	scripts/nightly.sh

clean:
	rm -rf bin out
