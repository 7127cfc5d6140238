// Package openapi holds the OpenAPI (Swagger 2.0) document of the cluster
// API's HTTP/JSON gateway. hack/proto.sh generates it from the protos; the
// server serves it at /openapi.json.
package openapi

import _ "embed"

// Document is the generated OpenAPI document, JSON.
//
//go:embed berth.swagger.json
var Document []byte
