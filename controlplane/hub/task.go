package hub

import (
	"context"
	"fmt"
	"slices"
	"sort"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// task is a RunTask waiting for its agent's result.
type task struct {
	req  *cutoverv1.RunTask
	done chan *cutoverv1.TaskResult // buffered: the first result wins
}

// Connected reports whether the cluster's agent holds a stream open now.
func (h *Hub) Connected(cluster string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[cluster] != nil
}

// Capable reports whether the cluster's agent announced a capability in
// its last hello (see package capability).
func (h *Hub) Capable(cluster, c string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.clusters[cluster].GetCapabilities(), c)
}

// RunTask has the cluster's agent run t once and waits for its result, or
// for ctx to end. The task is sent on the agent's stream, and again on
// every new stream until the result arrives: agents answer a task id they
// have run before with the result they kept, so a reconnect never runs it
// twice. Safe for concurrent use; task ids must be unique per cluster.
func (h *Hub) RunTask(ctx context.Context, cluster string, t *cutoverv1.RunTask) (*cutoverv1.TaskResult, error) {
	w := &task{req: t, done: make(chan *cutoverv1.TaskResult, 1)}
	h.mu.Lock()
	if h.tasks[cluster] == nil {
		h.tasks[cluster] = map[string]*task{}
	}
	if _, dup := h.tasks[cluster][t.GetId()]; dup {
		h.mu.Unlock()
		return nil, fmt.Errorf("task %s for %s: already waiting for it", t.GetId(), cluster)
	}
	h.tasks[cluster][t.GetId()] = w
	if s := h.sessions[cluster]; s != nil {
		s.wake()
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.tasks[cluster], t.GetId())
		if len(h.tasks[cluster]) == 0 {
			delete(h.tasks, cluster)
		}
		if s := h.sessions[cluster]; s != nil {
			delete(s.tasks, t.GetId()) // asked for again, it is sent again
		}
		h.mu.Unlock()
	}()
	select {
	case res := <-w.done:
		return res, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("task %s in %s: %w", t.GetId(), cluster, ctx.Err())
	}
}

// taskDone hands an agent's result to whoever waits for it; a result
// nobody waits for (a late answer) is dropped.
func (h *Hub) taskDone(cluster string, res *cutoverv1.TaskResult) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := h.tasks[cluster][res.GetId()]; w != nil {
		select {
		case w.done <- res:
		default:
		}
	}
}

// pendingTasks are the tasks of the session's cluster not yet sent on its
// stream, in id order; they count as sent once returned.
func (h *Hub) pendingTasks(s *session) []*cutoverv1.RunTask {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*cutoverv1.RunTask
	for id, w := range h.tasks[s.cluster] {
		if !s.tasks[id] {
			out = append(out, w.req)
			s.tasks[id] = true
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out
}
