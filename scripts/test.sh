#!/usr/bin/env bash
# `npm test`: provision what is missing, then jest on the real stack (Temporal, dockerd, registry, Postgres).
# Ends with one line `N passed, N failed`. Extra arguments go to jest (e.g. a test file).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/provision.sh || exit 1
# Tests run the snapflow bin, which runs the compiled CLI: compile what changed (incremental).
npm run --silent build || exit 1
mkdir -p .data
# If jest is killed before its teardown, stop what its globalSetup started (by pid, from the state file).
export SNAPFLOW_TEST_POINTER="$PWD/.data/test-stack-$$"
trap 'npx --no-install tsx scripts/stop-test-stack.ts' EXIT
# The whole suite: the history scan (run last) must have seen the other files' workflows; the vm state
# chunker's own Go tests (sparse input, reuse against a previous map, corrupt and missing chunks) run first.
if [ $# -eq 0 ]; then
  export SNAPFLOW_HISTORY_SCAN_MIN=50
  (cd tools/chunks && CGO_ENABLED=0 GOTOOLCHAIN=local go test -mod=readonly -count=1 ./...) || exit 1
fi
results=.data/jest-results-$$.json
rm -f "$results"
npx jest --runInBand --forceExit --json --outputFile="$results" "$@"
status=$?
node -e '
  const fs = require("fs");
  const file = process.argv[1];
  if (!fs.existsSync(file)) { console.log("0 passed, 1 failed"); process.exit(0); }
  const r = JSON.parse(fs.readFileSync(file, "utf8"));
  // Suites that crashed before running count as failures too.
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + r.numRuntimeErrorTestSuites} failed`);
' "$results"
exit $status
