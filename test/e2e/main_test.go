// Package e2e runs real cutover-server, cutover-agent and demo-app
// processes on loopback and checks what a user would see: the traffic each
// proxy actually serves, the CLI's output and exit codes, and the REST API.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/cutover-dev/cutover/test/harness"
)

// bins is set once by TestMain and only read by tests.
var bins harness.Binaries

func TestMain(m *testing.M) {
	b, cleanup, err := harness.TestBinaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: binaries:", err)
		os.Exit(1)
	}
	bins = b
	code := m.Run()
	cleanup()
	os.Exit(code)
}
