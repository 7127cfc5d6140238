#!/usr/bin/env bash
# images.sh builds the offline test images into DIR (default bin/images):
#   busybox.tar  localhost/busybox:latest, Cmd ["sh"], Env PATH=/bin
# An archive is rebuilt only when missing or older than the busybox binary or
# the image builder's source. Quiet unless something fails.
set -euo pipefail

cd "$(dirname "$0")/.."
dir=${1:-bin/images}
busybox=${BUSYBOX:-/usr/bin/busybox}
out="$dir/busybox.tar"

stale=0
if [ ! -s "$out" ]; then
	stale=1
else
	for src in "$busybox" hack/mkimage/*.go internal/testimage/*.go; do
		case "$src" in *_test.go) continue ;; esac
		if [ "$src" -nt "$out" ]; then
			stale=1
			break
		fi
	done
fi

if [ "$stale" -eq 1 ]; then
	mkdir -p "$dir"
	go run ./hack/mkimage -busybox "$busybox" -ref localhost/busybox:latest -cmd sh -env PATH=/bin -o "$out"
fi
