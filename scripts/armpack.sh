#!/usr/bin/env bash
# Regenerates fixtures/arm64/dumps: llama.cpp (the in-build ec98e2002)
# cross-compiled for aarch64 (-O3 -march=armv8.2-a+dotprod+fp16, kernel
# profile arm64-neon) and run under qemu-user on fixture models written by
# the x86 bin/layerdiff. The cells are fixtures/arm64/cells.txt.
#
#   scripts/armpack.sh            # build both binaries, record every cell
#   ARMPACK_ONLY=REGEX scripts/armpack.sh   # only the cells matching REGEX
#
# Needs gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static
# (Debian: apt-get install -y gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
# qemu-user-static). Models are kept in out/arm64/models (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
ARM_CFLAGS="-O3 -march=armv8.2-a+dotprod+fp16"
QEMU=${QEMU:-qemu-aarch64-static}
SYSROOT=${SYSROOT:-/usr/aarch64-linux-gnu}
CELLS=fixtures/arm64/cells.txt
PACK=fixtures/arm64/dumps
WORK=out/arm64
# The cache views (256 cells, nearly all empty) are listed but not stored:
# every node name except those starting with "cache_".
FILTER='^([^c]|c[^a]|ca[^c]|cac[^h]|cach[^e]|cache[^_])'

make build
(
	export LAYERDIFF_CFLAGS="$ARM_CFLAGS"
	. scripts/env.sh
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ \
		go build -tags llamacpp -o bin/layerdiff-arm64 ./cmd/layerdiff
)
mkdir -p "$WORK/models" "$PACK"
n=0
while IFS='|' read -r name fx dp; do
	name=${name//[[:space:]]/}
	case "$name" in '' | '#'*) continue ;; esac
	if [ -n "${ARMPACK_ONLY:-}" ] && ! [[ $name =~ $ARMPACK_ONLY ]]; then
		continue
	fi
	# shellcheck disable=SC2086
	bin/layerdiff fixture $fx --out "$WORK/models/$name.gguf" --force >/dev/null
	# run from $WORK so that the manifest's model path is models/NAME.gguf
	# shellcheck disable=SC2086
	(cd "$WORK" && "$QEMU" -L "$SYSROOT" ../../bin/layerdiff-arm64 dump --model "models/$name.gguf" $dp \
		--filter "$FILTER" --out "../../$PACK/$name" --force)
	n=$((n + 1))
done <"$CELLS"
# a full run also removes the dumps of cells no longer listed
if [ -z "${ARMPACK_ONLY:-}" ]; then
	for d in "$PACK"/*/; do
		d=$(basename "$d")
		grep -q "^$d " "$CELLS" || rm -rf "${PACK:?}/$d"
	done
fi
echo "armpack: $n cells in $PACK ($(du -sh "$PACK" | cut -f1))"
"$QEMU" --version | head -1
