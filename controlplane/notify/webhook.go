package notify

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// webhookMessage is what a webhook sink posts: the fields a deployment
// tracker filters on at the top, and the whole record as `cutover audit
// export` prints it.
type webhookMessage struct {
	Event   string          `json:"event"`
	App     string          `json:"app"`
	Cluster string          `json:"cluster"`
	Time    string          `json:"time"`
	Record  json.RawMessage `json:"record"`
}

// webhookBody encodes r for a webhook sink.
func webhookBody(r *cutoverv1.AuditRecord) ([]byte, error) {
	rec, err := protojson.Marshal(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(webhookMessage{
		Event:   r.GetAction(),
		App:     r.GetApp(),
		Cluster: r.GetCluster(),
		Time:    r.GetTime().AsTime().UTC().Format(time.RFC3339Nano),
		Record:  rec,
	})
}
