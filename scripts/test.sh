#!/usr/bin/env bash
# Runs every test: installs any missing test tool, then the Swift unit and
# integration tests, then the interop tests against the built binary with
# real programs (swaks, smtplib, Postfix's smtp-source, strace, dnsmasq,
# opendkim) over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v swaks >/dev/null || need_apt+=(swaks)
command -v smtp-source >/dev/null || [ -x /usr/sbin/smtp-source ] || need_apt+=(postfix)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
command -v strace >/dev/null || need_apt+=(strace)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# A Japanese font, so that the console's screenshots show Japanese text.
[ -d /usr/share/fonts/opentype/ipafont-gothic ] || need_apt+=(fonts-ipafont-gothic)
[ -x /usr/sbin/opendkim ] || need_apt+=(opendkim)
# zlib's header, for the message archive's compression (a build dependency).
[ -f /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
# PostgreSQL's server, for the shared store's tests (a private cluster, started below).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing: ${need_apt[*]}"
    apt-get update -qq
    # Postfix only for its tools: no system MTA is configured or started.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -c "import pytest, xdist, aiosmtpd, dns, boto3, sendgrid, schemathesis, dkim, nacl, standardwebhooks, selenium, requests" 2>/dev/null \
    || pip install -q pytest pytest-xdist aiosmtpd dnspython boto3 sendgrid schemathesis dkimpy pynacl standardwebhooks selenium requests
export PATH="$PATH:/usr/sbin"

# A private PostgreSQL cluster (scripts/postgres.sh) for the store's tests on the shared engine.
# fsync is off: it holds only test data, and each test makes a database of its own.
pg_dir=$(mktemp -d)
trap 'scripts/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
HIKYAKU_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$pg_dir" fsync=off max_connections=300)
export HIKYAKU_TEST_POSTGRES_URL

# No new code that can trap on a value (force unwraps, try!, as!, trapping conversions).
python3 scripts/check-traps.py
swift build --build-tests
swift test --skip-build --parallel
# Every committed fuzz input through its target (ordinary build): none may trap.
scripts/fuzz.sh --replay
# Three workers, one test file each at a time: most of an interop test is waiting on sockets and timers,
# and each file owns its fixed loopback MX addresses (127.0.0.x:25), so files never share one.
HIKYAKU_BIN="$(swift build --show-bin-path)/hikyaku" python3 -m pytest -q -p no:benchmark -n 3 --dist loadfile Tests/Interop "$@"
