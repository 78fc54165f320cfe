#!/usr/bin/env bash
# checkpack.sh DIR — record a fresh reference pack with the in-build
# llama.cpp (bin/layerdiff, `make build`) on this machine, with a geometry,
# seed and tokens of its own (not the fixtures' nor shared/refpack's), and
# check every cell with layerdiff: the default mode must pass, --mode
# bitexact must pass (bit-identical under the kernel profile chosen from
# the dump's system_info), and the cross-kernel mode under another profile
# must pass. Exits 1 if any cell does not.
#
#   scripts/checkpack.sh out/pack            # 15 types x 3 archs x FA on/off
#   TYPES="q8_0 f16" ARCHS=llama scripts/checkpack.sh out/pack
set -euo pipefail
dir=${1:?usage: scripts/checkpack.sh DIR}
B=${LAYERDIFF:-bin/layerdiff}
ARCHS=${ARCHS:-llama qwen2 qwen3}
TYPES=${TYPES:-f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k_m q5_k_m q6_k iq4_nl iq4_xs}
GEOM=${GEOM:---embd 384 --layers 3 --heads 6 --kv-heads 2 --ff 640 --vocab-size 400 --seed 23}
TOKENS=${TOKENS:-1,5,77,300,12,399,250,3,88,141,7}
mkdir -p "$dir/models" "$dir/dumps"
n=0 fails=0
for arch in $ARCHS; do
	for typ in $TYPES; do
		m="$dir/models/$arch-$typ.gguf"
		# shellcheck disable=SC2086
		"$B" fixture --arch "$arch" --type "$typ" $GEOM --out "$m" --force >/dev/null
		for fa in on off; do
			d="$dir/dumps/$arch-$typ-fa$fa"
			"$B" dump --model "$m" --tokens "$TOKENS" --flash-attn "$fa" --threads 2 --out "$d" --force >/dev/null 2>&1
			n=$((n + 1))
			prof=$("$B" run --ref "$d" --model "$m" --format json | sed -n 's/.*"kernels": "\([^"]*\)".*/\1/p' | head -1)
			other=x86-avx2
			[ "${prof%-repack}" = x86-avx2 ] && other=x86-avx512
			for args in "" "--mode bitexact" "--kernels $other"; do
				# shellcheck disable=SC2086
				if ! "$B" run --ref "$d" --model "$m" $args >"$dir/last.txt" 2>&1; then
					echo "FAIL $arch-$typ-fa$fa ${args:-default}: $(head -1 "$dir/last.txt")"
					fails=$((fails + 1))
				fi
			done
		done
	done
done
echo "$n cells ($GEOM, tokens $TOKENS): $fails failures over default, bitexact and cross-kernel (other profile) runs"
[ "$fails" -eq 0 ]
