#!/usr/bin/env bash
# Run every Go fuzz target in the module, one after the other, each for
# FUZZTIME (default 30s), and print one summary line per target.
#
#   scripts/fuzz.sh [FUZZTIME]          e.g. scripts/fuzz.sh 10m
#   FUZZ_ONLY='FuzzParse|FuzzNPY' scripts/fuzz.sh 1m   only targets matching a regex
#   FUZZ_PARALLEL=2 scripts/fuzz.sh     fuzzing workers per target (default 1)
#   FUZZ_MINIMIZETIME=60s scripts/fuzz.sh   time to minimize each new input (default
#                                       10s; Go's 60s spends whole runs minimizing
#                                       large seeds such as a saved report)
#
# `make fuzz FUZZTIME=10m` calls this. Targets in files built only with the
# llamacpp tag are run with that tag and scripts/env.sh's flags. Each run's
# output goes to out/fuzz/<target>.log (FUZZ_LOG_DIR); a line per run is
# appended to out/fuzz/results.tsv (date, target, package, seconds, execs,
# result) for docs/reliability.md. A crasher is written by Go to the
# package's testdata/fuzz/<target>/ and then runs as a regression seed in
# every `go test`; the script exits 1 if any target failed.
set -u -o pipefail

fuzztime=${1:-30s}
only=${FUZZ_ONLY:-.}
parallel=${FUZZ_PARALLEL:-1}
minimize=${FUZZ_MINIMIZETIME:-10s}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
logdir=${FUZZ_LOG_DIR:-out/fuzz}
mkdir -p "$logdir"
results=$logdir/results.tsv

# targets prints "dir<TAB>name<TAB>tags" for every fuzz target, sorted.
targets() {
	find . -name '*_test.go' -not -path '*/testdata/*' -not -path './out/*' -not -path '*/.*' |
		while read -r f; do
			f=${f#./}
			tags=
			if head -n 5 "$f" | grep -q '^//go:build .*llamacpp' &&
				! head -n 5 "$f" | grep -q '^//go:build .*!llamacpp'; then
				tags=llamacpp
			fi
			sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*\*testing\.F).*/\1/p' "$f" |
				while read -r name; do
					printf './%s\t%s\t%s\n' "$(dirname "$f")" "$name" "$tags"
				done
		done | sort -u
}

list=$(targets | awk -F'\t' -v re="$only" '$2 ~ re')
if [ -z "$list" ]; then
	echo "fuzz: no fuzz targets match '$only'" >&2
	exit 2
fi
n=$(printf '%s\n' "$list" | wc -l)
echo "fuzz: $n targets, $fuzztime each, $parallel worker(s)"

failed=0
summary=()
while IFS=$'\t' read -r dir name tags; do
	log=$logdir/$name.log
	start=$(date +%s)
	(
		if [ "$tags" = llamacpp ]; then
			. scripts/env.sh
		fi
		exec go test ${tags:+-tags "$tags"} -run '^$' -fuzz "^${name}\$" \
			-fuzztime "$fuzztime" -fuzzminimizetime "$minimize" -parallel "$parallel" "$dir"
	) >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
	execs=${execs:-0}
	if [ $rc -eq 0 ]; then
		result=ok
	else
		failed=1
		crasher=$(grep -o 'testdata/fuzz/[^ ]*' "$log" | tail -n 1)
		if [ -n "$crasher" ]; then
			result="CRASH $dir/$crasher"
		else
			result="FAIL (exit $rc, see $log)"
		fi
	fi
	line=$(printf '%-24s %-22s %6ss %12s execs  %s' "$name" "$dir" "$secs" "$execs" "$result")
	echo "fuzz: $line"
	summary+=("$line")
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" "$dir" "$secs" "$execs" "$result" >>"$results"
done <<<"$list"

echo "fuzz: summary"
for l in "${summary[@]}"; do
	echo "  $l"
done
exit $failed
