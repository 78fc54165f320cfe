#!/usr/bin/env bash
# Every weight type, Go forward pass against the in-build llama.cpp (see
# BENCHMARKS.md, "Every weight type"). Called by `make bench-types` after
# `make build`.
#
# For each type, generates once (cached in $CACHE) a random-weight model of
# TinyLlama width with $LAYERS layers (2048 embd, 32 heads, 4 KV heads,
# 5632 FFN, 32000 vocab), then runs `benchrun` for the Go pass and for
# llama.cpp alternately, $TOKENS tokens, $THREADS threads, one warm-up and
# $REPS timed passes each, and prints a markdown table: median (min-max)
# seconds and the ratio.
#
# Environment: TYPES (all 20)  LAYERS=4  TOKENS=32  THREADS=2  REPS=3
#              CACHE=out/bench/cache  OUT=out/bench
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh

TYPES=${TYPES:-"f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k_m q5_k_m q6_k iq4_nl iq4_xs iq3_xxs iq3_s tq1_0 tq2_0 mxfp4 iq2_xxs iq2_xs iq2_s iq1_s iq1_m"}
LAYERS=${LAYERS:-4}
TOKENS=${TOKENS:-32}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
CACHE=${CACHE:-out/bench/cache}
OUT=${OUT:-out/bench}
mkdir -p "$CACHE" "$OUT"
[ -x bin/layerdiff ] || { echo "bench-types: bin/layerdiff missing: run make build" >&2; exit 1; }
(. scripts/env.sh && go build -tags llamacpp -o bin/benchrun ./scripts/benchrun)

RESULTS=$OUT/results-types.jsonl
: > "$RESULTS.new"
for t in $TYPES; do
	m=$CACHE/types-$LAYERS-$t.gguf
	if [ ! -f "$m" ]; then
		echo "bench-types: generating $m (once)" >&2
		bin/layerdiff fixture --type "$t" --embd 2048 --layers "$LAYERS" --heads 32 --kv-heads 4 \
			--ff 5632 --vocab-size 32000 --out "$m" >&2
	fi
	for e in go llamacpp; do
		echo "bench-types: $t $e (load $(loadavg))" >&2
		./bin/benchrun -engine "$e" -model "$m" -tokens "$TOKENS" -threads "$THREADS" -reps "$REPS" \
			2>>"$OUT/benchrun.log" | tee -a "$RESULTS.new" >/dev/null
	done
done
mv "$RESULTS.new" "$RESULTS"

python3 - "$RESULTS" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
print("| type | Go median (min-max) s | llama.cpp median (min-max) s | Go / llama.cpp | CPU s Go / llama.cpp | Go RSS MB |")
print("|---|---|---|---|---|---|")
by = {}
for r in rs:
    t = r["model"].rsplit("-", 1)[1].removesuffix(".gguf")
    by.setdefault(t, {})[r["engine"].split("/")[0]] = r  # benchrun names the Go engine go/KERNELS
for t, e in by.items():
    g, l = e["go"], e["llamacpp"]
    f = lambda r: f'{r["median_s"]:.3f} ({r["min_s"]:.3f}-{r["max_s"]:.3f})'
    print(f'| {t} | {f(g)} | {f(l)} | {g["median_s"]/l["median_s"]:.2f} | {g["cpu_median_s"]:.3f} / {l["cpu_median_s"]:.3f} | {g["peak_rss_kb"]//1024} |')
PY
