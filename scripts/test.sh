#!/usr/bin/env bash
# THE test command: installs dependencies, starts the test servers on free loopback
# ports, runs `dotnet test Fed.sln -c Release [extra args...]`, stops the servers
# (also on failure or CTRL-C) and exits with dotnet's exit code. The last line is
#   tests: N passed, N failed, N skipped
# summed over the per-assembly summaries dotnet test prints.
# Env: FED_SERVICES="redis redis-cluster postgres kafka" (subset to start; "none" for none).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# No MSBuild worker nodes left running after the build.
export MSBUILDDISABLENODEREUSE=1

log() { echo "test.sh: $*" >&2; }

LOG="$(mktemp "${TMPDIR:-/tmp}/fed-test.XXXXXX.log")"
SERVICES_UP=0
cleanup() {
  if [ "$SERVICES_UP" = 1 ]; then
    SERVICES_UP=0
    bash "$ROOT/scripts/services.sh" stop >/dev/null 2>&1 || log "warning: services.sh stop failed"
  fi
  if [ "${CI:-}" = true ]; then
    dotnet build-server shutdown >/dev/null 2>&1 || true
  fi
  rm -f "$LOG"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

bash "$ROOT/scripts/install-deps.sh" || { log "install-deps failed"; exit 1; }

read -r -a SERVICES <<<"${FED_SERVICES:-redis redis-cluster postgres kafka}"
if [ "${SERVICES[*]}" != none ]; then
  SERVICES_UP=1
  bash "$ROOT/scripts/services.sh" start "${SERVICES[@]}" || { log "could not start test services"; exit 1; }
  # shellcheck disable=SC1091
  source "$ROOT/.run/env.sh"
fi

dotnet test Fed.sln -c Release "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}

# Per assembly: "Passed!  - Failed:     0, Passed:    12, Skipped:     0, Total: ..."
read -r passed failed skipped < <(
  sed -nE 's/^[[:space:]]*(Passed|Failed|Skipped)![[:space:]]+-[[:space:]]+Failed:[[:space:]]*([0-9]+),[[:space:]]*Passed:[[:space:]]*([0-9]+),[[:space:]]*Skipped:[[:space:]]*([0-9]+).*/\2 \3 \4/p' "$LOG" \
    | awk '{ f += $1; p += $2; s += $3 } END { printf "%d %d %d\n", p, f, s }'
)

cleanup
trap - EXIT
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  log "dotnet test exited $rc (build error, crashed test host or no tests?)"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
