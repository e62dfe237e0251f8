// Package apidoc embeds the OpenAPI document generated from proto/ by
// protoc-gen-openapiv2 (cutover.swagger.json beside this file).
package apidoc

import _ "embed"

//go:embed cutover.swagger.json
var openAPI []byte

// OpenAPI returns the API's OpenAPI (Swagger 2.0) document.
func OpenAPI() []byte { return openAPI }
