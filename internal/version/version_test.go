package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestRevision(t *testing.T) {
	tests := []struct {
		name     string
		settings []debug.BuildSetting
		want     string
	}{
		{"no vcs stamp", nil, ""},
		{"clean", []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}, " (0123456789ab)"},
		{"modified", []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.modified", Value: "true"},
		}, " (0123456789ab, modified)"},
		{"short revision", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, " (abc)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := revision(tt.settings); got != tt.want {
				t.Errorf("revision() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStringStartsWithVersion(t *testing.T) {
	if got := String(); !strings.HasPrefix(got, Version) {
		t.Errorf("String() = %q, want prefix %q", got, Version)
	}
}
