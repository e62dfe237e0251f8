package auth_test

import (
	"os"
	"strings"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// indent nests a YAML list under a key.
func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
