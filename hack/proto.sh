#!/usr/bin/env bash
# proto.sh regenerates the Go code of proto/berth/v1 into OUT (default: the
# repository root, so the files land in api/berth/v1), with the protoc-gen-go
# plugins pinned as go tools in go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
command -v protoc >/dev/null || { echo "proto: protoc missing; run hack/setup-host.sh" >&2; exit 1; }
PATH="$bin:$PATH" protoc -I proto \
	--go_out="$out" --go_opt=module=github.com/berthproject/berth \
	--go-grpc_out="$out" --go-grpc_opt=module=github.com/berthproject/berth \
	proto/berth/v1/*.proto
