# Helpers shared by scripts/bench.sh and scripts/bench7b.sh (sourced).

# tokens_csv N: the benchmark's N token ids, 1 + 7919·i mod 31999, as
# benchrun uses them.
tokens_csv() { python3 -c "import sys; n=int(sys.argv[1]); print(','.join(str(1+(i*7919)%31999) for i in range(n)))" "$1"; }

# loadavg: the 1-, 5- and 15-minute load averages.
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# timed CMD...: runs CMD (stdout discarded; stderr as the caller redirects
# it) under /usr/bin/time and sets T_WALL (s), T_CPU (user + sys, s) and
# T_RSS (peak, KiB). A failing CMD is still timed.
timed() {
	local tf
	tf=$(mktemp)
	/usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >/dev/null || true
	local user sys
	read -r T_WALL user sys T_RSS < "$tf"
	rm -f "$tf"
	T_CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
}

# timed_json ENGINE MODEL TOKENS THREADS [EXTRA]: one result line from the
# last `timed` (EXTRA: more JSON fields, each starting with a comma).
timed_json() {
	printf '{"engine":"%s","model":"%s","tokens":%d,"threads":%d,"wall_s":%s,"cpu_s":%s,"peak_rss_kb":%s%s,"loadavg":"%s"}\n' \
		"$1" "$2" "$3" "$4" "$T_WALL" "$T_CPU" "$T_RSS" "${5:-}" "$(loadavg)"
}
