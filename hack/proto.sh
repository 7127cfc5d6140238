#!/usr/bin/env bash
# proto.sh regenerates the Go code of proto/berth/v1 into OUT (default: the
# repository root, so the files land in api/berth/v1), with the protoc-gen-go
# plugins pinned as go tools in go.mod. ClusterService also gets its
# HTTP/JSON gateway (api/berth/v1/cluster.pb.gw.go) and OpenAPI document
# (api/openapi/berth.swagger.json). The protos carry no HTTP annotations:
# generate_unbound_methods maps every RPC to POST /berth.v1.ClusterService/<Method>.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
go build -o "$bin/protoc-gen-grpc-gateway" github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway
go build -o "$bin/protoc-gen-openapiv2" github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2
command -v protoc >/dev/null || { echo "proto: protoc missing; run hack/setup-host.sh" >&2; exit 1; }
PATH="$bin:$PATH" protoc -I proto \
	--go_out="$out" --go_opt=module=github.com/berthproject/berth \
	--go-grpc_out="$out" --go-grpc_opt=module=github.com/berthproject/berth \
	proto/berth/v1/*.proto
mkdir -p "$out/api/openapi"
PATH="$bin:$PATH" protoc -I proto \
	--grpc-gateway_out="$out" \
	--grpc-gateway_opt=module=github.com/berthproject/berth,generate_unbound_methods=true \
	--openapiv2_out="$out/api/openapi" \
	--openapiv2_opt=generate_unbound_methods=true,allow_merge=true,merge_file_name=berth \
	proto/berth/v1/cluster.proto
