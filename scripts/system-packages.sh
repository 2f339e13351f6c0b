#!/usr/bin/env bash
# Installs the Debian packages the test suite drives as real clients and peers
# (see docs/architecture.md, "Tests"). Idempotent: does nothing when all
# are present. Needs root for apt-get; without it, says what is missing.
set -euo pipefail

# command -> package
declare -A wanted=(
    [mbsync]=isync
    [clamd]=clamav-daemon
    [swaks]=swaks
    [postfix]=postfix
    [fetchmail]=fetchmail
    [curl]=curl
    [mariadbd]=mariadb-server  # a private server the fault tests may kill
    [haproxy]=haproxy  # the load balancer sending PROXY headers (imap/test_haproxy.py)
    [vdirsyncer]=vdirsyncer  # syncs folders of .ics and .vcf files with CalDAV and CardDAV (dav/test_vdirsyncer.py)
    # The 3-node Galera cluster of tests/support/galera.py: the joiners' state
    # transfer runs rsync and looks for its daemon with ss.
    [rsync]=rsync
    [ss]=iproute2
)

missing=()
for command in "${!wanted[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("${wanted[$command]}")
done
# Galera's wsrep provider is a library, not a command.
[ -e /usr/lib/galera/libgalera_smm.so ] || missing+=(galera-4)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "system-packages: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
fi
echo "system-packages: installing ${missing[*]}" >&2
apt-get update -qq
# Postfix's package asks how to configure the machine's own mail system: say "not at
# all" (the tests run private instances with their own config_directory).
if [[ " ${missing[*]} " == *" postfix "* ]]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
