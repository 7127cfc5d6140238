# Berth: `make dev` runs a one-machine cluster, `make test` runs every test.
GO      ?= go
BIN     := bin/berth
VERSION ?= $(shell sh hack/version.sh)
LDFLAGS := -s -w -X github.com/berthproject/berth/api/version.Version=$(VERSION)
PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all build setup setup-dev dev test unit fuzz fuzz-short e2e chaos proto lint bench bench-scale images cosign clean release release-check install uninstall

all: build

# setup installs what building and testing Berth needs; setup-dev only
# what running it (make dev) needs.
setup:
	@bash hack/setup-host.sh --for test

setup-dev:
	@bash hack/setup-host.sh --for dev

# build makes a static binary (no cgo), the same bytes for the same commit.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/berth

# release builds the release archives and SHA256SUMS into dist/ (see
# hack/release.sh); RELEASE_TARGETS=linux/amd64 builds one.
release:
	VERSION=$(VERSION) bash hack/release.sh

# release-check is the quick form make test runs so that cross-builds
# cannot break unnoticed: the CLI type-checks for macOS and Windows, and
# the linux/amd64 archive is built into a temporary directory.
release-check:
	GOOS=darwin $(GO) vet ./cmd/berth ./cli/... ./api/...
	GOOS=windows $(GO) vet ./cmd/berth ./cli/... ./api/...
	@out=$$(mktemp -d); trap 'rm -rf $$out' EXIT; \
	OUT=$$out RELEASE_TARGETS=linux/amd64 VERSION=$(VERSION) bash hack/release.sh && ls $$out

# install puts berth, its systemd units, their environment files (only when
# absent) and shell completion under DESTDIR/PREFIX (see
# hack/install/install.sh).
install: build
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" BERTH_BIN="$(abspath $(BIN))" sh hack/install/install.sh

uninstall:
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" sh hack/install/install.sh --uninstall

# images builds the offline test and example images from busybox-static.
images: build
	@bash hack/images.sh bin/images

dev: setup-dev build images
	$(BIN) dev

unit:
	$(GO) test -race -count=1 ./api/... ./scheduler/... ./controlplane/... ./agent/... ./cli/... ./cmd/... ./internal/...

# e2e runs every e2e package, the chaos suite's short form (e2e/chaos)
# among them.
e2e: build images cosign
	BERTH_BIN=$(abspath $(BIN)) COSIGN_BIN=$(abspath bin/cosign) $(GO) test -p 1 -count=1 -timeout 25m ./e2e/...

# cosign builds the sigstore cosign CLI from its pinned tool module
# (tools/cosign) into bin/cosign, for the e2e tests that check that
# Berth's signatures and cosign's are interchangeable. The first build
# takes several minutes on two cores; the Go build cache makes the next
# ones quick.
cosign:
	cd tools/cosign && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(abspath bin/cosign) github.com/sigstore/cosign/v2/cmd/cosign

# chaos runs the chaos suite's long form: 20 server kills during churn, 20
# agent kills, a 60 s cut, an etcd member killed, a full disk, containerd
# frozen for 30 s; it ends with the line
# "chaos: N faults, lost 0, duplicates 0, orphans 0, leaked 0".
chaos: setup build images
	CHAOS=long BERTH_BIN=$(abspath $(BIN)) $(GO) test -p 1 -count=1 -timeout 90m -v ./e2e/chaos/

test: setup lint
	$(MAKE) release-check
	$(MAKE) unit
	$(MAKE) fuzz-short
	$(MAKE) e2e

# fuzz runs every Go fuzz test (func FuzzXxx in a _test.go file) of the
# repository for FUZZTIME each, one after another (go test fuzzes one
# target at a time); fuzzers added later are found the same way. A crash
# is written to the package's testdata/fuzz/ and fails the run: fix it and
# commit the input, which then runs with the unit tests. A run that fails
# only with "context deadline exceeded" and wrote no input is the fuzzing
# engine missing its own deadline while stopping its workers on a busy
# machine, not a find: that target runs once more.
FUZZTIME ?= 60s
fuzz:
	@set -e; \
	out=$$(mktemp); trap 'rm -f $$out' EXIT; \
	pkgs=$$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u); \
	for pkg in $$pkgs; do \
		for fz in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			for try in 1 2; do \
				echo "== $$pkg $$fz ($(FUZZTIME))"; \
				if $(GO) test -run '^$$' -fuzz "^$$fz\$$" -fuzztime $(FUZZTIME) $$pkg >$$out 2>&1; then cat $$out; break; fi; \
				cat $$out; \
				if [ $$try = 1 ] && grep -q 'context deadline exceeded' $$out && ! grep -q 'Failing input written' $$out; then \
					echo "== the fuzzing engine missed its deadline stopping; once more"; continue; \
				fi; \
				exit 1; \
			done; \
		done; \
	done

# fuzz-short is the short fuzzing make test runs: 5s a fuzzer.
fuzz-short:
	$(MAKE) fuzz FUZZTIME=5s

proto:
	bash hack/proto.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: setup build images
	BERTH_BIN=$(abspath $(BIN)) $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./e2e/...
	$(GO) test -run '^$$' -bench . ./scheduler/...
	$(GO) test -run '^$$' -bench . ./controlplane/vulndb/
	$(GO) test -run '^$$' -bench PassOneTaskFailed ./controlplane/orchestrator/
	$(GO) test -run '^$$' -bench ContainerStartWithStorage -benchtime 1x ./agent/runtime/containerd/
	$(GO) test -run '^$$' -bench CacheVerifyHit ./internal/imagesig/

# bench-scale runs NODES simulated nodes (fake runtime) against a real
# server, applies TASKS tasks and ends with the line "tasks/s: X". The e2e
# packages run one at a time: the scale test and the failover tests time
# node verdicts and must not share two cores with each other.
# SCALE_FLAGS passes more flags (like -server-flags "--gossip-probe-interval 2s").
NODES ?= 1000
TASKS ?= 100000
bench-scale: build
	$(GO) build -o bin/berth-scale ./e2e/scale/cmd/berth-scale
	BERTH_BIN=$(abspath $(BIN)) bin/berth-scale -nodes $(NODES) -tasks $(TASKS) $(SCALE_FLAGS)

clean:
	rm -rf bin dist
