#!/usr/bin/env bash
# images.sh builds the offline test images into DIR (default bin/images):
#   busybox.tar  localhost/busybox:latest, Cmd ["sh"], Env PATH=/bin
#   testapp      the e2e test program (e2e/testapp), static (CGO_ENABLED=0),
#                also run by tests in the network namespaces they make
#   testapp.tar  localhost/testapp:latest: busybox plus /bin/testapp,
#                Cmd ["testapp", "serve", "-port", "8080"], Env PATH=/bin
# An archive is rebuilt only when missing or older than one of its sources
# (the busybox binary, the image builder's source, the test program's).
# Quiet unless something fails.
set -euo pipefail

cd "$(dirname "$0")/.."
dir=${1:-bin/images}
busybox=${BUSYBOX:-/usr/bin/busybox}

# stale OUT SRC...: true when OUT is missing or older than a non-test SRC.
stale() {
	local out=$1 src
	shift
	[ -s "$out" ] || return 0
	for src in "$@"; do
		case "$src" in *_test.go) continue ;; esac
		[ "$src" -nt "$out" ] && return 0
	done
	return 1
}

imagesrc=("$busybox" hack/mkimage/*.go internal/testimage/*.go)

if stale "$dir/busybox.tar" "${imagesrc[@]}"; then
	mkdir -p "$dir"
	go run ./hack/mkimage -busybox "$busybox" -ref localhost/busybox:latest -cmd sh -env PATH=/bin -o "$dir/busybox.tar"
fi

if stale "$dir/testapp" e2e/testapp/*.go go.mod; then
	mkdir -p "$dir"
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/testapp" ./e2e/testapp
fi

if stale "$dir/testapp.tar" "${imagesrc[@]}" "$dir/testapp"; then
	go run ./hack/mkimage -busybox "$busybox" -ref localhost/testapp:latest -cmd "testapp serve -port 8080" -env PATH=/bin \
		-add "/bin/testapp=$dir/testapp" -o "$dir/testapp.tar"
fi
