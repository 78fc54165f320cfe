#!/usr/bin/env bash
# The scale check of BENCHMARKS.md: a LLaMA-2-7B-geometry model (4096 embd,
# 32 layers, 32 heads, 32 KV heads, 11008 FFN, 32000 vocab) at Q4_K_M,
# generated once with `layerdiff fixture` (cached in $CACHE: ~13 minutes and
# ~27 GB of temporary disk on a 2-core machine), dumped once by the in-build
# llama.cpp for $TOKENS tokens, then:
#   - the Go forward pass and llama.cpp's, side by side ($REPS repetitions
#     after a warm-up, separate processes, peak RSS each);
#   - the forward pass alone as a process (load + one cold pass) and a
#     full `layerdiff run` against the dump (wall, CPU, peak RSS, forward
#     phase from --timings), alternately, $REPS times each.
# Called by `make bench7b` after `make build`.
#
# Environment: TOKENS=32  THREADS=2  REPS=3  CACHE=out/bench/cache  OUT=out/bench
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh

TOKENS=${TOKENS:-32}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
CACHE=${CACHE:-out/bench/cache}
OUT=${OUT:-out/bench}
mkdir -p "$CACHE" "$OUT"
[ -x bin/layerdiff ] || { echo "bench7b: bin/layerdiff missing: run make build" >&2; exit 1; }
(. scripts/env.sh && go build -tags llamacpp -o bin/benchrun ./scripts/benchrun)

m=$CACHE/llama7b-q4_k_m.gguf
if [ ! -f "$m" ]; then
	echo "bench7b: generating $m (once; ~13 min, ~27 GB temporary disk)" >&2
	/usr/bin/time -f 'bench7b: fixture %e s, peak RSS %M KB' \
		./bin/layerdiff fixture --type q4_k_m --embd 4096 --layers 32 --heads 32 --kv-heads 32 \
		--ff 11008 --vocab-size 32000 --ctx 4096 --seed 1 --out "$m.tmp" --force
	mv "$m.tmp" "$m"
fi
d=$CACHE/dump-7b-$TOKENS
if [ ! -f "$d/manifest.json" ]; then
	/usr/bin/time -f 'bench7b: dump %e s, peak RSS %M KB' \
		./bin/layerdiff dump --model "$m" --tokens "$(tokens_csv "$TOKENS")" --threads "$THREADS" --out "$d" --force >/dev/null
fi

RESULTS=$OUT/results-7b.jsonl
: > "$RESULTS.new"
for e in go llamacpp; do
	echo "bench7b: forward $e (load $(loadavg))" >&2
	./bin/benchrun -engine "$e" -model "$m" -tokens "$TOKENS" -threads "$THREADS" -reps "$REPS" \
		2>>"$OUT/benchrun.log" | tee -a "$RESULTS.new"
done
for r in $(seq "$REPS"); do
	# The forward pass alone as a process: load the model, one cold pass.
	timed ./bin/benchrun -engine go -model "$m" -tokens "$TOKENS" -threads "$THREADS" -reps 0 2>>"$OUT/benchrun.log"
	timed_json forward-process "$m" "$TOKENS" "$THREADS" | tee -a "$RESULTS.new"
	echo "bench7b: layerdiff run #$r (load $(loadavg))" >&2
	timed ./bin/layerdiff run --ref "$d" --model "$m" --threads "$THREADS" --timings \
		--out "$OUT/run-7b.txt" --force 2>"$OUT/timings7b.txt"
	fwd=$(awk '$2 == "forward" {print $3}' "$OUT/timings7b.txt" | tr -d s)
	verdict=$(head -1 "$OUT/run-7b.txt")
	timed_json layerdiff-run "$m" "$TOKENS" "$THREADS" ",\"forward_phase_s\":${fwd:-null},\"verdict\":\"$verdict\"" | tee -a "$RESULTS.new"
done
mv "$RESULTS.new" "$RESULTS"
echo "bench7b: model $(stat -c %s "$m") bytes; results in $RESULTS" >&2
