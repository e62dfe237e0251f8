package reconcile_test

import (
	"testing"

	"github.com/cutover-dev/cutover/agent/reconcile"
)

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		":8080":          "127.0.0.1:8080",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		"[::]:8080":      "127.0.0.1:8080",
		"127.0.0.2:9000": "127.0.0.2:9000",
		"[::1]:9000":     "[::1]:9000",
		"":               "",
	} {
		if got := reconcile.Dialable(in); got != want {
			t.Errorf("Dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
