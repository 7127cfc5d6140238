#!/bin/sh
# install.sh installs Berth on this machine: the berth binary, the systemd
# units berth-server.service and berth-agent.service, their environment
# files (only when absent: an upgrade keeps yours) and shell completion.
# `make install` runs it from a source tree; a release tarball carries it
# beside the binary.
#
#   ./install.sh                       # into /usr/local, as root
#   PREFIX=/usr DESTDIR=/tmp/pkg ./install.sh   # staged, for packaging
#   ./install.sh --uninstall           # removes what install put (not /etc/berth)
#
# PREFIX (default /usr/local): the binary goes to $PREFIX/bin, units to
# $PREFIX/lib/systemd/system (systemd's path for units that software
# installs; /etc/systemd/system stays the administrator's, for overrides),
# completion under $PREFIX/share. SYSCONFDIR (default /etc): the
# environment files go to $SYSCONFDIR/berth. DESTDIR is prepended to every
# path. BERTH_BIN names the binary to install (default: berth beside this
# script).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
DESTDIR=${DESTDIR:-}
BERTH_BIN=${BERTH_BIN:-$here/berth}

bindir=$PREFIX/bin
unitdir=$PREFIX/lib/systemd/system
confdir=$SYSCONFDIR/berth
bashdir=$PREFIX/share/bash-completion/completions
fishdir=$PREFIX/share/fish/vendor_completions.d
# Debian's zsh looks in vendor-completions under /usr, site-functions
# under /usr/local.
if [ "$PREFIX" = /usr ]; then zshdir=$PREFIX/share/zsh/vendor-completions; else zshdir=$PREFIX/share/zsh/site-functions; fi

say() { echo "install: $*"; }

if [ "${1:-}" = --uninstall ]; then
	for f in "$bindir/berth" "$unitdir/berth-server.service" "$unitdir/berth-agent.service" \
		"$bashdir/berth" "$zshdir/_berth" "$fishdir/berth.fish"; do
		if [ -e "$DESTDIR$f" ]; then rm -f "$DESTDIR$f" && say "removed $f"; fi
	done
	say "kept $confdir and /var/lib/berth; berth agent --cleanup removes what an agent left on this node"
	exit 0
elif [ -n "${1:-}" ]; then
	echo "install: unknown argument $1; use no argument, or --uninstall" >&2
	exit 2
fi

[ -x "$BERTH_BIN" ] || { echo "install: no berth binary at $BERTH_BIN; set BERTH_BIN" >&2; exit 1; }

install -d -m 0755 "$DESTDIR$bindir" "$DESTDIR$unitdir" "$DESTDIR$bashdir" "$DESTDIR$zshdir" "$DESTDIR$fishdir"
install -m 0755 "$BERTH_BIN" "$DESTDIR$bindir/berth"
say "$bindir/berth"

for u in berth-server.service berth-agent.service; do
	sed "s|@BINDIR@|$bindir|g" "$here/$u" >"$DESTDIR$unitdir/$u.tmp"
	chmod 0644 "$DESTDIR$unitdir/$u.tmp"
	mv -f "$DESTDIR$unitdir/$u.tmp" "$DESTDIR$unitdir/$u"
	say "$unitdir/$u"
done

# The environment files may hold the join token and the unlock key: 0600
# in a 0700 directory, and never overwritten.
install -d -m 0700 "$DESTDIR$confdir"
for e in server.env agent.env; do
	if [ -e "$DESTDIR$confdir/$e" ]; then
		say "$confdir/$e exists, kept"
	else
		install -m 0600 "$here/$e" "$DESTDIR$confdir/$e"
		say "$confdir/$e"
	fi
done

# Completion: the release's files when shipped, else made by the binary.
completion() {
	if [ -f "$here/completions/$2" ]; then cat "$here/completions/$2"; else "$BERTH_BIN" completion "$1"; fi
}
completion bash berth.bash >"$DESTDIR$bashdir/berth"
completion zsh _berth >"$DESTDIR$zshdir/_berth"
completion fish berth.fish >"$DESTDIR$fishdir/berth.fish"
chmod 0644 "$DESTDIR$bashdir/berth" "$DESTDIR$zshdir/_berth" "$DESTDIR$fishdir/berth.fish"
say "completion for bash, zsh and fish under $PREFIX/share"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload
	say "systemd reloaded; edit $confdir/server.env or agent.env, then: systemctl enable --now berth-server (or berth-agent)"
fi
