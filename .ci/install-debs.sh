#!/bin/sh
# Debian packages some tests need, installed when missing (the lead calls this from .ci/run):
#   pgbouncer  test/journal-pgbouncer.test.ts (journal reads and LISTEN through transaction pooling)
#   chromium   test/sse-browser.test.ts (an EventSource and the inspector page in a real browser)
# A package that cannot be installed (no apt, no root, no network) is reported, not fatal: the
# tests that need it print a SKIP line with the reason.
set -u
PACKAGES="pgbouncer chromium"

missing=""
for package in $PACKAGES; do
  if ! command -v "$package" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$package" ]; then
    missing="$missing $package"
  fi
done
[ -z "$missing" ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "install-debs: not root and no sudo; not installing:$missing" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-debs: no apt-get; not installing:$missing" >&2
  exit 0
fi
echo "install-debs: installing$missing" >&2
# shellcheck disable=SC2086
if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  -o DPkg::Lock::Timeout=300 $missing; } >&2; then
  echo "install-debs: apt-get failed; tests needing$missing will SKIP" >&2
fi
exit 0
