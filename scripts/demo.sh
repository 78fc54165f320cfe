#!/usr/bin/env bash
# The main job end to end on a model the project generates itself:
# fixture -> llama.cpp dump -> layerdiff's Go forward pass -> compare -> report.
# Usage: scripts/demo.sh [OUTDIR]   (make demo builds bin/layerdiff first)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/demo}
ld=bin/layerdiff
mkdir -p "$out"
model=$out/llama-q8_0.gguf
prompt="The quick brown fox jumps over the lazy dog"

echo "== 1. generate a 2-layer LLaMA fixture, quantized to Q8_0 by llama.cpp"
$ld fixture --arch llama --type q8_0 --seed 1 --out "$model" --force
echo "== 2. dump every activation of llama.cpp on it"
$ld dump --model "$model" --prompt "$prompt" --out "$out/dump" --force
ls "$out/dump" | head -5
echo "   ... $(ls "$out/dump" | wc -l) files"
echo "== 3. run layerdiff's own forward pass on the same tokens and compare every activation"
$ld run --ref "$out/dump" --model "$model" --save "$out/clean.json" --force
echo "== 4. the same with a bug planted in layer 1's FFN up-projection (--inject): caught and blamed"
set +e
$ld run --ref "$out/dump" --model "$model" --inject ffn_up-1:scale=1.001 --save "$out/injected.json" --force > "$out/injected.txt"
rc=$?
set -e
head -20 "$out/injected.txt"
echo "   (exit code $rc: 1 means a divergence was found)"
[ "$rc" = 1 ] || { echo "demo: expected exit code 1 from the injected run" >&2; exit 1; }
echo "== 5. re-render the saved result as markdown and HTML"
$ld report --in "$out/injected.json" --format md --out "$out/injected.md" --force || true
$ld report --in "$out/injected.json" --format html --out "$out/injected.html" --force || true
echo "   wrote $out/injected.md and $out/injected.html"
