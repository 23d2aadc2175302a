#!/usr/bin/env bash
# deps.sh — install what pgmover needs to build, test and run its demo, from
# Debian's packages. Skips apt entirely when everything is there already.
set -euo pipefail

PACKAGES=(
    build-essential meson ninja-build pkg-config   # the build
    libpq-dev libuv1-dev libcjson-dev check        # libraries (check: unit tests)
    libssl-dev                                     # libcrypto's SHA-256 for the audit trail's hash chain
    libmicrohttpd-dev                              # HTTP of the Prometheus endpoint (metrics_listen)
    postgresql-15 postgresql-15-pglogical          # servers for tests and the demo
    postgresql-client-15 pgbouncer pgcopydb        # client tools, peers in bench/
    openssl procps iproute2 jq bc python3 curl     # TLS certs, pgrep, ss; jq, bc, python3 (a loopback DNS server), curl (test_metrics) for tests and bench
    clang-format git                               # test_style: the one C style (.clang-format), git ls-files
    systemd man-db groff-base bash-completion      # test_install: systemd-analyze verify/security, systemd-sysusers and
                                                   # -tmpfiles --root on the installed unit and entries, man -l renders the
                                                   # pages (groff), bash-completion's completionsdir (pkg-config) and
                                                   # _init_completion for the completion script
    prometheus                                     # test_metrics: promtool check metrics on a real scrape
    chromium fonts-dejavu-core                     # test_report: the migration report opened in a real headless browser
                                                   # (screenshot, rendered DOM, print to PDF, console errors); a font to draw it
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "deps.sh: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# the Debian package creates and starts a cluster of its own; pgmover's tests
# and demo start their own clusters and do not need it
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q "15 main .* online"; then
    pg_ctlcluster 15 main stop || true
fi
