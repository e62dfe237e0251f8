package spec

import (
	"bytes"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// DecodeStrict fills m from v, a value decoded from JSON with UseNumber
// (as Parse decodes a manifest), the way Parse fills a rollout spec:
// unknown fields, wrong types and oneofs set twice are all refused, each as
// a FieldError whose path starts with path (e.g. "spec"). Other manifest
// kinds, such as release policies, use it so that they are read exactly
// like rollouts.
func DecodeStrict(path string, v any, m proto.Message) error {
	if v == nil {
		return Errors{{Path: path, Detail: "must be a mapping, got nothing"}}
	}
	var c errs
	checkMessage(&c, path, v, m.ProtoReflect().Descriptor())
	if err := c.err(); err != nil {
		return err
	}
	js, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("re-encode %s: %w", path, err)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		// checkMessage accepts only what protojson accepts; reaching here is
		// a bug, but still a clear refusal.
		return Errors{{Path: path, Detail: err.Error()}}
	}
	return nil
}

// DecodeJSON decodes a JSON document the way Parse does (numbers kept as
// json.Number), for DecodeStrict.
func DecodeJSON(js []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("malformed document: %w", err)
	}
	return doc, nil
}
