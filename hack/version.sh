#!/bin/sh
# version.sh prints the version a build of this tree carries: the git tag
# (v0.3.0), or the last tag with the commits since it (v0.3.0-5-gabc1234),
# with -dirty for uncommitted changes; without any tag, v0.0.0-dev+COMMIT.
# api/version compares versions by their major.minor.
cd "$(dirname "$0")/.." || exit 1
git describe --tags --dirty 2>/dev/null && exit 0
commit=$(git rev-parse --short HEAD 2>/dev/null) || { echo v0.0.0-dev; exit 0; }
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit=$commit.dirty; fi
echo "v0.0.0-dev+$commit"
