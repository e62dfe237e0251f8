package checks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// Payload is the JSON body of every HTTP hook call.
type Payload struct {
	Rollout       string   `json:"rollout"`
	RolloutNumber int64    `json:"rolloutNumber"`
	Revision      string   `json:"revision"`
	Phase         string   `json:"phase"`
	Check         string   `json:"check"`
	Hook          string   `json:"hook"`
	Wave          string   `json:"wave,omitempty"`
	Step          int32    `json:"step"`
	Clusters      []string `json:"clusters"`
	AppliedBy     string   `json:"appliedBy,omitempty"`
	Urgency       string   `json:"urgency,omitempty"`
	Policy        string   `json:"policy,omitempty"`
	Image         string   `json:"image,omitempty"`
	SHA256        string   `json:"sha256,omitempty"`
}

// webhook calls an HTTP hook: each attempt bounded by the hook's timeout,
// retried 1 s apart; any 2xx answer passes.
func (x *Runner) webhook(ctx context.Context, r *cutoverv1.Rollout, run *cutoverv1.CheckRun, h *cutoverv1.Hook) *cutoverv1.CheckResult {
	start := x.now()
	s := r.GetSpec()
	p := Payload{
		Rollout: r.GetName(), RolloutNumber: r.GetStatus().GetRolloutNumber(), Revision: s.GetRevision().GetName(),
		Phase: run.GetPhase(), Check: run.GetId(), Hook: h.GetName(), Step: run.GetStep(), Clusters: run.GetClusters(),
		AppliedBy: r.GetAppliedBy(), Urgency: s.GetUrgency(), Policy: s.GetPolicy(),
		Image: s.GetRevision().GetImage(), SHA256: s.GetRevision().GetSha256(),
	}
	if waves := s.GetTargets().GetWaves(); int(run.GetWave()) < len(waves) {
		p.Wave = waves[run.GetWave()].GetName()
	}
	body, err := json.Marshal(p)
	if err != nil {
		return x.result(h.GetName(), KindHTTP, "", start, false, fmt.Sprintf("encode payload: %v", err), "")
	}
	timeout := spec.HookTimeout(h)
	attempts := int(h.GetRetries()) + 1
	var msg, output string
	attempt := 1
	for ; ; attempt++ {
		var passed bool
		passed, msg, output = x.call(ctx, h, body, timeout, taskID(r, run, "hook:"+h.GetName(), 1))
		if passed {
			res := x.result(h.GetName(), KindHTTP, "", start, true, msg, output)
			res.Attempts = int32(attempt)
			return res
		}
		if attempt >= attempts || !sleep(ctx, time.Second) {
			break
		}
	}
	if attempts > 1 {
		msg = fmt.Sprintf("%s (%d attempts)", msg, attempt)
	}
	x.log.Warn("hook failed", "rollout", r.GetName(), "phase", run.GetPhase(), "hook", h.GetName(), "err", msg)
	res := x.result(h.GetName(), KindHTTP, "", start, false, msg, output)
	res.Attempts = int32(min(attempt, attempts))
	return res
}

// call makes one attempt; it reports whether it passed, a one-line
// message, and the response body's tail.
func (x *Runner) call(ctx context.Context, h *cutoverv1.Hook, body []byte, timeout time.Duration, key string) (bool, string, string) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := h.GetHttp().GetMethod()
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(actx, method, h.GetHttp().GetUrl(), bytes.NewReader(body))
	if err != nil {
		return false, fmt.Sprintf("request: %v", err), ""
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cutover-hook")
	req.Header.Set("Idempotency-Key", key)
	for k, v := range h.GetHttp().GetHeaders() {
		val, err := spec.ExpandHookSecrets(v, os.LookupEnv)
		if err != nil {
			return false, fmt.Sprintf("header %s: %v", k, err), ""
		}
		req.Header.Set(k, val)
	}
	shown := redact(h.GetHttp().GetUrl())
	resp, err := x.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return false, fmt.Sprintf("%s %s: no answer within %s", method, shown, timeout), ""
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // net/http repeats the method and the whole URL
		}
		return false, fmt.Sprintf("%s %s: %v", method, shown, err), ""
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return false, fmt.Sprintf("read answer: %v", err), tail(out)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return false, fmt.Sprintf("%s %s: answer not complete within %s", method, shown, timeout), tail(out)
	}
	msg := fmt.Sprintf("HTTP %d", resp.StatusCode)
	return resp.StatusCode >= 200 && resp.StatusCode < 300, msg, tail(out)
}

// redact is a hook's URL as results, logs and the audit trail show it:
// without credentials or query, which may carry tokens.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
