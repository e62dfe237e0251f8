#!/usr/bin/env bash
# Fails when a process imports another process's code: cli/ may use neither
# controlplane/ nor agent/, and agent/ and controlplane/ never import each
# other. Test files count too.
set -euo pipefail
mod=$(go list -m)
fail=0
forbid() { # forbid <packages> <forbidden prefix...>
	local pkgs=$1; shift
	for bad in "$@"; do
		hits=$(go list -test -deps "$pkgs" | grep -E "^$mod/$bad(/|$)" || true)
		if [ -n "$hits" ]; then
			echo "import boundary broken: $pkgs depends on $bad:"
			echo "$hits" | sed 's/^/  /'
			fail=1
		fi
	done
}
forbid ./cli/... controlplane agent
forbid ./agent/... controlplane cli
forbid ./controlplane/... agent cli
[ "$fail" = 0 ] && echo "import boundaries ok"
exit "$fail"
