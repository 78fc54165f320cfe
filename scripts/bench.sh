#!/usr/bin/env bash
# Benchmarks of layerdiff's Go forward pass against the in-build llama.cpp
# (see BENCHMARKS.md). Called by `make bench` after `make build`.
#
# Generates (once, cached in $CACHE) random-weight models of TinyLlama 1.1B
# geometry (2048 embd, 22 layers, 32 heads, 4 KV heads, 5632 FFN, 32000
# vocab) at Q8_0 and Q4_K_M, then for each model and token count runs, in
# separate processes (so each peak RSS is its own), the Go forward pass and
# llama.cpp on the same tokens and threads: one warm-up, $REPS timed
# repetitions, median and min-max of wall and CPU time, peak RSS (VmHWM).
# Finally a full `layerdiff run` (forward + compare + report) against a
# llama.cpp dump of $RUN_TOKENS tokens, timed with /usr/bin/time, against
# the forward pass alone.
#
# Environment: TYPES="q8_0 q4_k_m"  TOKENS="8 32 128"  THREADS=2  REPS=5
#              KERNELS="x86-avx2 x86-avx512"
#              RUN_TOKENS=32  CACHE=out/bench/cache  OUT=out/bench
# Results: $OUT/results.jsonl (one JSON object per measurement) and a
# markdown table on stdout to paste into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh

TYPES=${TYPES:-"q8_0 q4_k_m"}
TOKENS=${TOKENS:-"8 32 128"}
THREADS=${THREADS:-2}
# the Go pass runs under each kernel profile (side by side in one session)
KERNELS=${KERNELS:-"x86-avx2 x86-avx512"}
REPS=${REPS:-5}
RUN_TOKENS=${RUN_TOKENS:-32}
CACHE=${CACHE:-out/bench/cache}
OUT=${OUT:-out/bench}
mkdir -p "$CACHE" "$OUT"

(. scripts/env.sh && go build -tags llamacpp -o bin/benchrun ./scripts/benchrun)
[ -x bin/layerdiff ] || { echo "bench: bin/layerdiff missing: run make build" >&2; exit 1; }

RESULTS=$OUT/results.jsonl
: > "$RESULTS.new"

model_of() { echo "$CACHE/tinyllama-$1.gguf"; }

for t in $TYPES; do
	m=$(model_of "$t")
	if [ ! -f "$m" ]; then
		echo "bench: generating $m (once)" >&2
		./bin/layerdiff fixture --type "$t" --embd 2048 --layers 22 --heads 32 --kv-heads 4 \
			--ff 5632 --vocab-size 32000 --ctx 2048 --seed 1 --out "$m.tmp" --force
		mv "$m.tmp" "$m"
	fi
done

for t in $TYPES; do
	m=$(model_of "$t")
	for n in $TOKENS; do
		for k in $KERNELS; do
			echo "bench: $t $n tokens go, kernels $k (load $(loadavg))" >&2
			./bin/benchrun -engine go -kernels "$k" -model "$m" -tokens "$n" -threads "$THREADS" -reps "$REPS" \
				2>>"$OUT/benchrun.log" | tee -a "$RESULTS.new"
		done
		echo "bench: $t $n tokens llamacpp (load $(loadavg))" >&2
		./bin/benchrun -engine llamacpp -model "$m" -tokens "$n" -threads "$THREADS" -reps "$REPS" \
			2>>"$OUT/benchrun.log" | tee -a "$RESULTS.new"
	done
done

# Full layerdiff run against a dump, vs the forward pass alone (above).
for t in $TYPES; do
	m=$(model_of "$t")
	d=$CACHE/dump-$t-$RUN_TOKENS
	if [ ! -d "$d" ]; then
		./bin/layerdiff dump --model "$m" --tokens "$(tokens_csv "$RUN_TOKENS")" --threads "$THREADS" --out "$d.tmp" --force >/dev/null
		rm -rf "$d" && mv "$d.tmp" "$d"
	fi
	for r in $(seq "$REPS"); do
		# The forward pass alone as a process: load the model, one cold pass.
		timed ./bin/benchrun -engine go -kernels native -model "$m" -tokens "$RUN_TOKENS" -threads "$THREADS" -reps 0 2>>"$OUT/benchrun.log"
		timed_json forward-process "$m" "$RUN_TOKENS" "$THREADS" | tee -a "$RESULTS.new"
		echo "bench: $t layerdiff run $RUN_TOKENS tokens #$r (load $(loadavg))" >&2
		timed ./bin/layerdiff run --ref "$d" --model "$m" --threads "$THREADS" --mode bitexact --out "$OUT/run-$t.txt" --force
		timed_json layerdiff-run "$m" "$RUN_TOKENS" "$THREADS" | tee -a "$RESULTS.new"
	done
done

mv "$RESULTS.new" "$RESULTS"
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    if r["engine"] == "llamacpp" or r["engine"].startswith("go/"):
        by[(r["model"].rsplit("-", 1)[-1].removesuffix(".gguf"), r["tokens"], r["engine"])] = r
print("| model | tokens | thr | Go kernels | Go median (min-max) s | llama.cpp median (min-max) s | ratio | vs x86-avx2 | Go CPU s | llama.cpp CPU s | Go RSS MB | llama.cpp RSS MB | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (t, n, e), g in sorted(by.items()):
    if not e.startswith("go/") or (t, n, "llamacpp") not in by:
        continue
    l = by[(t, n, "llamacpp")]
    base = by.get((t, n, "go/x86-avx2"))
    vs = f"{g['median_s']/base['median_s']:.2f}" if base else "-"
    print(f"| {t} | {n} | {g['threads']} | {e[3:]} | {g['median_s']:.3f} ({g['min_s']:.3f}-{g['max_s']:.3f}) | {l['median_s']:.3f} ({l['min_s']:.3f}-{l['max_s']:.3f}) | {g['median_s']/l['median_s']:.2f} | {vs} | {g['cpu_median_s']:.2f} | {l['cpu_median_s']:.2f} | {g['peak_rss_kb']/1024:.0f} | {l['peak_rss_kb']/1024:.0f} | {g['loadavg']} / {l['loadavg']} |")
runs, procs = {}, {}
for r in rows:
    key = r["model"].rsplit("-", 1)[-1].removesuffix(".gguf")
    if r["engine"] == "layerdiff-run":
        runs.setdefault(key, []).append(r)
    if r["engine"] == "forward-process":
        procs.setdefault(key, []).append(r)
for t, rs in sorted(runs.items()):
    w = sorted(x["wall_s"] for x in rs)
    c = sorted(x["cpu_s"] for x in rs)
    g = next((v for (tt, nn, e), v in sorted(by.items()) if tt == t and nn == rs[0]["tokens"] and e.startswith("go/")), None)
    ps = procs.get(t, [])
    pw = statistics.median(x["wall_s"] for x in ps) if ps else 0
    pc = statistics.median(x["cpu_s"] for x in ps) if ps else 0
    print(f"\nlayerdiff run {t} {rs[0]['tokens']} tokens: wall {statistics.median(w):.2f} s ({w[0]:.2f}-{w[-1]:.2f}), CPU {statistics.median(c):.2f} s, peak RSS {max(x['peak_rss_kb'] for x in rs)/1024:.0f} MB")
    if ps:
        print(f"  forward alone as a process (load + one cold pass): wall {pw:.2f} s, CPU {pc:.2f} s, peak RSS {max(x['peak_rss_kb'] for x in ps)/1024:.0f} MB -> run is {statistics.median(w)/pw:.2f}x (wall), {statistics.median(c)/pc:.2f}x (CPU)")
    if g:
        print(f"  against the warm forward pass above ({g['median_s']:.3f} s): {statistics.median(w)/g['median_s']:.2f}x (wall)")
PY
