#!/usr/bin/env bash
# release.sh builds Berth's release archives into OUT (default dist/):
# berth for linux/amd64 and linux/arm64, the CLI alone for darwin/amd64,
# darwin/arm64 and windows/amd64 (the server and the agent run on Linux
# only), each as berth_VERSION_OS_ARCH.tar.gz (.zip for Windows), and
# SHA256SUMS over them.
#
# The builds are static and reproducible: CGO_ENABLED=0, -trimpath, no
# symbol table, and archives with sorted entries, fixed owners and the
# commit's time as every file's time, so the same commit gives the same
# bytes on any machine with the same Go.
#
#   VERSION=v0.3.0 hack/release.sh
#   RELEASE_TARGETS=linux/amd64 hack/release.sh     # the quick form
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}
OUT=${OUT:-dist}
VERSION=${VERSION:-$(hack/version.sh)}
RELEASE_TARGETS=${RELEASE_TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
ldflags="-s -w -X github.com/berthproject/berth/api/version.Version=$VERSION"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

# Completion scripts are the same for every target (cobra's scripts ask
# the binary itself): made once with a build for this machine.
host=$($GO env GOHOSTOS)/$($GO env GOHOSTARCH)
CGO_ENABLED=0 GOOS=${host%/*} GOARCH=${host#*/} $GO build -trimpath -ldflags "$ldflags" -o "$work/host/berth" ./cmd/berth
mkdir -p "$work/completions"
"$work/host/berth" completion bash >"$work/completions/berth.bash"
"$work/host/berth" completion zsh >"$work/completions/_berth"
"$work/host/berth" completion fish >"$work/completions/berth.fish"

archives=()
for target in $RELEASE_TARGETS; do
	os=${target%/*} arch=${target#*/}
	name=berth_${VERSION}_${os}_${arch}
	stage=$work/$name
	mkdir -p "$stage"
	exe=berth
	[ "$os" = windows ] && exe=berth.exe
	echo "release: $name" >&2
	if [ "$target" = "$host" ]; then
		cp "$work/host/berth" "$stage/$exe" # the same build
	else
		CGO_ENABLED=0 GOOS=$os GOARCH=$arch $GO build -trimpath -ldflags "$ldflags" -o "$stage/$exe" ./cmd/berth
	fi
	cp -r "$work/completions" "$stage/"
	for f in README.md LICENSE; do [ -f "$f" ] && cp "$f" "$stage/"; done
	if [ "$os" = linux ]; then
		cp hack/install/install.sh hack/install/berth-server.service hack/install/berth-agent.service \
			hack/install/server.env hack/install/agent.env "$stage/"
	fi
	find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	if [ "$os" = windows ]; then
		archive=$name.zip
		(cd "$work" && find "$name" | LC_ALL=C sort | TZ=UTC zip -X -q -@ "$work/$archive")
	else
		archive=$name.tar.gz
		tar -C "$work" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
			--mode='u+rwX,go+rX,go-w' -cf - "$name" | gzip -n -9 >"$work/$archive"
	fi
	mv -f "$work/$archive" "$OUT/$archive"
	archives+=("$archive")
done

(cd "$OUT" && sha256sum "${archives[@]}" >SHA256SUMS)
echo "release: ${#archives[@]} archives and SHA256SUMS in $OUT/" >&2
