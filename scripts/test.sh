#!/usr/bin/env bash
# `npm test`: the whole suite through tap (its options are in package.json's "tap"). The TAP stream is also
# saved to .tap/last-run.tap; when the suite fails, its failing assertions are printed again at the very end,
# each with the path of subtests leading to it (scripts/tap-failures.ts), so a log kept only by its tail still
# names them. Arguments go to tap (`npm test -- build/test/cli/files.test.js`).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tap
tap "$@" | tee .tap/last-run.tap
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  echo
  node build/scripts/tap-failures.js .tap/last-run.tap || true
  echo "# tap exited with $rc"
fi
exit "$rc"
