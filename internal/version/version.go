// Package version reports the build version shared by every Cutover binary.
package version

import (
	"runtime/debug"
)

// Version is the release this tree builds.
const Version = "0.1.0-dev"

// String returns Version followed by the VCS revision the binary was built
// from, when the Go toolchain recorded one, e.g. "0.1.0-dev (3f2a9c1b4d5e,
// modified)".
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	return Version + revision(info.Settings)
}

// revision formats the vcs.revision and vcs.modified settings, or returns ""
// when the build has no VCS stamp (go test, go run, -buildvcs=false).
func revision(settings []debug.BuildSetting) string {
	var rev string
	var modified bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		return " (" + rev + ", modified)"
	}
	return " (" + rev + ")"
}
