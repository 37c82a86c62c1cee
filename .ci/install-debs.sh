#!/usr/bin/env bash
# Debian packages the tests need, installed only when missing (CI runs as root).
#   chromium  the SSE bridge's browser test (test/sse-browser.test.ts, driven by puppeteer-core;
#             without it that test prints a SKIP line)
# Called by .ci/run before npm test. Never fails the run: a package that cannot be installed
# leaves its tests to SKIP visibly.
set -uo pipefail

need=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)

if [ "${#need[@]}" -eq 0 ]; then
  echo "== debian packages: all present"
  exit 0
fi
echo "== apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } </dev/null; then
  echo "!! could not install ${need[*]}: the tests that need them will SKIP" >&2
fi
exit 0
