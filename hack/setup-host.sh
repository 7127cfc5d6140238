#!/usr/bin/env bash
# setup-host.sh makes this Debian machine ready to run and test Berth:
# it installs the Debian packages Berth needs when they are missing and
# starts containerd when its socket is not there. Idempotent, silent and
# quick when everything is in place.
set -euo pipefail

packages=(containerd runc containernetworking-plugins busybox-static etcd-server iproute2 iptables util-linux protobuf-compiler)

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
