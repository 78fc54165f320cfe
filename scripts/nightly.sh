#!/usr/bin/env bash
# Nightly regression run (docs/nightly.md): for every cell of a matrix of
# fixture models x tensor types x numerics modes x flash attention, dump
# llama.cpp's activations, run layerdiff's forward pass against them, and
# hold the result against the cell's committed baseline
# (fixtures/baselines/CELL.json) with `layerdiff baseline check`.
#
# Usage: scripts/nightly.sh [--update-baselines]     (make build first)
#
# Prints one line per cell; writes $NIGHTLY_OUT/summary.md, junit.xml and
# cells/CELL/{result.json,report.md,check.json,log.txt}.
# Exit status: 0 every cell matches its baseline; 1 a cell regressed,
# changed or has no baseline; 2 a cell could not be run and its baseline
# does not record that error (or bad usage). With --update-baselines the
# baselines are rewritten from this run (a cell that cannot be run is
# recorded as such) and only a failure to check or write makes it fail.
#
# Environment:
#   NIGHTLY_MATRIX     default (36 cells, about a minute on 2 cores) or full
#                      (180 cells, about 7 minutes)
#   NIGHTLY_ARCHS, NIGHTLY_TYPES, NIGHTLY_NUMERICS, NIGHTLY_FA
#                      override one axis (space- or comma-separated)
#   NIGHTLY_OUT        output directory (out/nightly)
#   NIGHTLY_CACHE      fixtures and dumps, reused while the binary is
#                      unchanged ($NIGHTLY_OUT/cache)
#   NIGHTLY_REUSE_CACHE=1  reuse them even though the binary changed (when
#                      only the forward pass or the comparison changed)
#   NIGHTLY_BASELINES  baseline directory (fixtures/baselines)
#   NIGHTLY_FACTOR, NIGHTLY_NMSE_FLOOR, NIGHTLY_MAX_ABS_FLOOR
#                      the growth rule (4, 1e-14, 1e-6)
#   NIGHTLY_THREADS    threads for llama.cpp and the forward pass (0: all)
#   LAYERDIFF          the layerdiff binary (bin/layerdiff)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

update=0
for arg in "$@"; do
	case $arg in
	--update-baselines) update=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "nightly: unknown argument $arg (see --help)" >&2; exit 2 ;;
	esac
done

ld=${LAYERDIFF:-bin/layerdiff}
out=${NIGHTLY_OUT:-out/nightly}
cache=${NIGHTLY_CACHE:-$out/cache}
baselines=${NIGHTLY_BASELINES:-fixtures/baselines}
factor=${NIGHTLY_FACTOR:-4}
nmse_floor=${NIGHTLY_NMSE_FLOOR:-1e-14}
max_abs_floor=${NIGHTLY_MAX_ABS_FLOOR:-1e-6}
threads=${NIGHTLY_THREADS:-0}
matrix=${NIGHTLY_MATRIX:-default}

# What every baseline was recorded with: changing these invalidates all of
# fixtures/baselines (re-record them with --update-baselines).
seed=1
prompt="The quick brown fox"

case $matrix in
default)
	archs="llama qwen2 qwen3"
	types="q8_0 q4_k_m f16"
	numerics="ggml f64"
	fas="on off"
	;;
full)
	archs="llama qwen2 qwen3"
	types="f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k_m q5_k_m q6_k iq4_nl iq4_xs"
	numerics="ggml f64"
	fas="on off"
	;;
*) echo "nightly: NIGHTLY_MATRIX must be default or full, not $matrix" >&2; exit 2 ;;
esac
archs=${NIGHTLY_ARCHS:-$archs}
types=${NIGHTLY_TYPES:-$types}
numerics=${NIGHTLY_NUMERICS:-$numerics}
fas=${NIGHTLY_FA:-$fas}
archs=${archs//,/ } types=${types//,/ } numerics=${numerics//,/ } fas=${fas//,/ }

if [ ! -x "$ld" ]; then
	echo "nightly: $ld not found or not executable: run make build (or set LAYERDIFF)" >&2
	exit 2
fi
help=$("$ld" baseline --help 2>&1) || true
case $help in
*--error*) ;;
*) echo "nightly: $ld has no (current) baseline command: rebuild it with make build" >&2; exit 2 ;;
esac

sha256() {
	if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# Fixtures and dumps depend on the fixture generator and the in-build
# llama.cpp, both part of the binary: reuse the cache only while the binary
# is the same.
stamp=$(sha256 "$ld")
mkdir -p "$cache" "$out"
if [ "${NIGHTLY_REUSE_CACHE:-0}" != 1 ] && [ "$(cat "$cache/stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "${cache:?}"/*.gguf "${cache:?}"/*.log "${cache:?}"/dump-*
	echo "$stamp" >"$cache/stamp"
fi
rm -rf "$out/cells"
mkdir -p "$out/cells"

ncells=0
for _ in $archs; do for _ in $types; do for _ in $numerics; do for _ in $fas; do ncells=$((ncells + 1)); done; done; done; done
echo "nightly: $matrix matrix, $ncells cells (archs: $archs; types: $types; numerics: $numerics; flash attention: $fas)"
echo "nightly: rule: metric <= max($factor*baseline, floor) with floors nmse $nmse_floor, max_abs $max_abs_floor; baselines in $baselines"
[ "$update" = 1 ] && echo "nightly: --update-baselines: rewriting the baselines of these cells"

# check_cell CELL DUMP [--result FILE | --error MSG]: hold the cell against
# its baseline (printing its line), update the baseline when asked, count
# the outcome.
check_cell() {
	local cell=$1 dump=$2 dir=$out/cells/$1
	shift 2
	local ref=() rc=0
	[ -f "$dump/manifest.json" ] && ref=(--ref "$dump")
	"$ld" baseline check "$@" --baseline "$baselines/$cell.json" --cell "$cell" ${ref[@]+"${ref[@]}"} \
		--factor "$factor" --nmse-floor "$nmse_floor" --max-abs-floor "$max_abs_floor" \
		--out "$dir/check.json" 2>>"$dir/log.txt" || rc=$?
	if [ "$rc" -ge 2 ]; then
		printf '%-11s %-26s %s\n' ERROR "$cell" "baseline check failed (exit $rc): $(tail -n 1 "$dir/log.txt")"
		errors=$((errors + 1))
		return
	fi
	if [ "$update" = 1 ]; then
		# Record the baseline, then check again so that the summary
		# describes the new state.
		if ! "$ld" baseline update "$@" --baseline "$baselines/$cell.json" --cell "$cell" ${ref[@]+"${ref[@]}"} >/dev/null 2>>"$dir/log.txt"; then
			printf '%-11s %-26s %s\n' ERROR "$cell" "baseline update failed: $(tail -n 1 "$dir/log.txt")"
			errors=$((errors + 1))
			return
		fi
		rc=0
		"$ld" baseline check "$@" --baseline "$baselines/$cell.json" --cell "$cell" ${ref[@]+"${ref[@]}"} \
			--factor "$factor" --nmse-floor "$nmse_floor" --max-abs-floor "$max_abs_floor" \
			--out "$dir/check.json" >/dev/null 2>&1 || rc=$?
	fi
	case "$rc:$1" in
	0:*) ;;
	*:--error) errors=$((errors + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
}

# cell_error MSG: MSG without the output directory, so that a baseline can
# record it.
cell_error() {
	local msg=${1//"$cache/"/}
	echo "${msg//"$out/"/}"
}

start=$SECONDS
cells=()
errors=0
failed=0
for arch in $archs; do
	for type in $types; do
		model=$cache/$arch-$type.gguf
		model_err=""
		if [ ! -s "$model" ]; then
			"$ld" fixture --arch "$arch" --type "$type" --seed "$seed" --out "$model" --force --threads "$threads" \
				>"$cache/$arch-$type.log" 2>&1 || model_err="fixture failed: $(tail -n 1 "$cache/$arch-$type.log")"
		fi
		for fa in $fas; do
			dump=$cache/dump-$arch-$type-fa$fa
			dump_err=$model_err
			if [ -z "$dump_err" ] && [ ! -f "$dump/manifest.json" ]; then
				"$ld" dump --model "$model" --prompt "$prompt" --flash-attn "$fa" --threads "$threads" --out "$dump" --force \
					>"$dump.log" 2>&1 || dump_err="dump failed: $(tail -n 1 "$dump.log")"
			fi
			for num in $numerics; do
				cell=$arch-$type-$num-fa$fa
				cells+=("$cell")
				cd_=$out/cells/$cell
				mkdir -p "$cd_"
				if [ -n "$dump_err" ]; then
					echo "$dump_err" >"$cd_/log.txt"
					check_cell "$cell" "$dump" --error "$(cell_error "$dump_err")"
					continue
				fi
				# run exits 1 on a divergence (a known failure is still a
				# result to check) and 2 on bad input; an unmeasured run
				# exits 2 but saves its result.
				rc=0
				"$ld" run --ref "$dump" --model "$model" --numerics "$num" --threads "$threads" \
					--save "$cd_/result.json" --format md --out "$cd_/report.md" --force >"$cd_/log.txt" 2>&1 || rc=$?
				if [ ! -f "$cd_/result.json" ]; then
					check_cell "$cell" "$dump" --error "$(cell_error "run failed (exit $rc): $(tail -n 1 "$cd_/log.txt")")"
					continue
				fi
				check_cell "$cell" "$dump" --result "$cd_/result.json"
			done
		done
	done
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$(git status --porcelain 2>/dev/null | wc -l)" -gt 0 ]; then commit="$commit (with local changes)"; fi
sysinfo=""
for m in "$cache"/dump-*/manifest.json; do
	[ -f "$m" ] && sysinfo=$(sed -n 's/.*"system_info": *"\(.*\)",*$/\1/p' "$m")
	break
done
rc=0
"$ld" baseline summary --dir "$out/cells" --md "$out/summary.md" --junit "$out/junit.xml" \
	--note "matrix=$matrix ($ncells cells)" --note "commit=$commit" --note "layerdiff=$("$ld" --version)" \
	--note "prompt=$prompt (fixture seed $seed)" --note "llama.cpp system info=${sysinfo:-unknown}" \
	--note "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --note "duration=$((SECONDS - start)) s" \
	"${cells[@]}" || rc=$?
[ "$rc" -le 1 ] || { echo "nightly: summary failed (exit $rc)" >&2; exit 2; }
echo "nightly: wrote $out/summary.md and $out/junit.xml in $((SECONDS - start)) s"

if [ "$errors" -gt 0 ]; then
	echo "nightly: $errors cell(s) could not be run" >&2
	exit 2
fi
if [ "$update" = 1 ]; then
	echo "nightly: baselines of $ncells cells written to $baselines; review with git diff $baselines"
	exit 0
fi
if [ "$failed" -gt 0 ]; then
	echo "nightly: $failed cell(s) differ from their baselines (see $out/summary.md)" >&2
	exit 1
fi
