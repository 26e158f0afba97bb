#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the browser tests (tests-e2e/browser), which drive
# it with Playwright. Playwright never downloads a browser in this project. Idempotent: does
# nothing when the browser is there. As root on Debian/Ubuntu: apt-get update + install chromium.
# Elsewhere it says what to do and exits non-zero, so `make test` stops with that message.
# INTERLOPER_TEST_CHROMIUM points the tests (and this check) at another chromium binary.
set -euo pipefail

CHROMIUM=${INTERLOPER_TEST_CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
  echo "install-browser: $CHROMIUM present ($("$CHROMIUM" --version 2>/dev/null | head -n1 || echo 'version unknown'))"
  exit 0
fi

if [ "$CHROMIUM" = /usr/bin/chromium ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: $CHROMIUM missing; installing Debian's chromium package (apt-get update; apt-get install -y chromium)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q chromium
  if [ -x "$CHROMIUM" ]; then
    echo "install-browser: installed $("$CHROMIUM" --version 2>/dev/null | head -n1 || echo "$CHROMIUM")"
    exit 0
  fi
  echo "install-browser: apt-get finished but $CHROMIUM is still missing" >&2
  exit 1
fi

if [ "$CHROMIUM" != /usr/bin/chromium ]; then
  echo "install-browser: INTERLOPER_TEST_CHROMIUM=$CHROMIUM is not an executable file" >&2
  exit 1
fi
cat >&2 <<MSG
install-browser: $CHROMIUM not found, and it cannot be installed here (needs root and apt-get).
The browser tests (tests-e2e/browser) need Debian's chromium: run \`sudo apt-get install chromium\`
(or set INTERLOPER_TEST_CHROMIUM to a chromium binary) and run make test again.
MSG
exit 1
