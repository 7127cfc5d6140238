#!/usr/bin/env bash
# setup-host.sh makes this Debian machine ready to run Berth (--for dev,
# what make dev uses) or to build and test it (--for test, the default,
# what make test uses): it installs the Debian packages needed when they
# are missing and starts containerd when its socket is not there.
# Idempotent, silent and quick when everything is in place.
set -euo pipefail

usage() { echo "usage: setup-host.sh [--for dev|test]" >&2; exit 2; }
purpose=test
case "${1:-}" in
"") ;;
--for) [ $# -eq 2 ] || usage; purpose=$2 ;;
--for=*) purpose=${1#--for=} ;;
*) usage ;;
esac

# Running Berth: containerd and runc run the containers, the CNI plugins
# and iproute2/iptables/util-linux (nsenter, mount) their networks. tini
# gives /usr/bin/tini-static, which the agent mounts into containers with
# init: true as their PID 1. git is what BuildKit fetches git build
# contexts with (berth build URL, build triggers). busybox-static is what
# make images builds the example images from, which make dev imports.
dev_packages=(containerd runc containernetworking-plugins iproute2 iptables util-linux tini git busybox-static)
# Building and testing it besides: protoc and the well-known types (make
# proto), etcd for the external-etcd tests, a registry, Chromium and
# Node.js for the dashboard tests, zip for the Windows release archive.
test_packages=(etcd-server protobuf-compiler libprotobuf-dev docker-registry chromium nodejs zip)
case "$purpose" in
dev) packages=("${dev_packages[@]}") ;;
test) packages=("${dev_packages[@]}" "${test_packages[@]}") ;;
*) echo "setup-host: --for $purpose: use dev (run Berth) or test (build and test it)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup-host: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	echo "setup-host: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's etcd-server package starts a system etcd on 2379 where an init
# system exists; Berth's tests start their own, so nothing more is needed.

sock=/run/containerd/containerd.sock
if ! [ -S "$sock" ] || ! ctr --address "$sock" version >/dev/null 2>&1; then
	mkdir -p /var/log/berth
	# setsid: its own session, so containerd outlives the shell (and the
	# process group) that started it.
	setsid -f containerd >>/var/log/berth/containerd.log 2>&1 </dev/null
	for _ in $(seq 1 100); do
		ctr --address "$sock" version >/dev/null 2>&1 && break
		sleep 0.1
	done
	ctr --address "$sock" version >/dev/null 2>&1 || {
		echo "setup-host: containerd did not start; see /var/log/berth/containerd.log" >&2
		exit 1
	}
fi

# buildkitd drives `berth build` on agents. It is built from the tool module
# in tools/buildkitd (about two minutes on two cores) only when this
# version is missing, into a versioned path, so a version bump rebuilds it
# and an unchanged one costs a stat.
buildkit_version=v0.34.2
buildkitd=/usr/local/lib/berth/buildkitd-$buildkit_version
if ! [ -x "$buildkitd" ]; then
	command -v go >/dev/null 2>&1 || {
		echo "setup-host: go is needed to build buildkitd; install Go and run again" >&2
		exit 1
	}
	echo "setup-host: building buildkitd $buildkit_version (a few minutes, once)" >&2
	mkdir -p "$(dirname "$buildkitd")"
	tools="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools/buildkitd" && pwd)"
	# Built beside the final path and renamed, so an interrupted build
	# never leaves a partial binary that looks installed.
	(cd "$tools" && CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X github.com/moby/buildkit/version.Version=$buildkit_version" \
		-o "$buildkitd.tmp" github.com/moby/buildkit/cmd/buildkitd)
	mv -f "$buildkitd.tmp" "$buildkitd"
fi
if [ "$(readlink /usr/local/bin/buildkitd 2>/dev/null)" != "$buildkitd" ]; then
	ln -sfn "$buildkitd" /usr/local/bin/buildkitd
fi
