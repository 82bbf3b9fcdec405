#!/usr/bin/env bash
# Builds the Debian packages (cargo-deb, from the metadata in agent/, collector/ and
# client/Cargo.toml),
# checks them with lintian (errors fail), installs them with dpkg, verifies the systemd units
# and reports their `systemd-analyze security` exposure, runs the installed binaries, and
# purges them. Run as root on a Debian machine (CI does, from .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version 3.8.0
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v adduser >/dev/null || missing+=(adduser)
command -v logrotate >/dev/null || missing+=(logrotate)
if ((${#missing[@]})); then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; fi

rm -f target/debian/*.deb
# The profile whose binaries are packaged: `release` (the default: what is shipped) or `dev`.
# CI passes dev: its test step has just built those binaries, and this script checks the
# packaging (metadata, units, man pages, install, purge), not the optimiser. A release build
# would add about 7.5 minutes to a run that must stay under 30.
profile=${ZDN_PACKAGE_PROFILE:-release}
case $profile in
  release) bin_dir=target/release ;;
  dev) bin_dir=target/debug ;;
  *) echo "ZDN_PACKAGE_PROFILE must be release or dev, not $profile" >&2; exit 2 ;;
esac
# Without debug line tables: `cargo deb --strip` removes them anyway, so they only cost time.
CARGO_PROFILE_RELEASE_DEBUG=0 cargo build --profile "$profile" --locked -p zdn-agent -p zdn-collector -p zdn-client
# A manual page per program and subcommand, and bash completions, each written by the program
# from the clap definitions its --help comes from, so they never disagree with it.
rm -rf target/man target/completions
for bin in zdn-agent zdn-collector zdn; do
  mkdir -p "target/man/$bin" target/completions
  "$bin_dir/$bin" man-pages "target/man/$bin"
  gzip -9n "target/man/$bin"/*.1
  "$bin_dir/$bin" completions bash > "target/completions/$bin"
done
cargo deb --locked --no-build --strip --profile "$profile" -p zdn-agent
cargo deb --locked --no-build --strip --profile "$profile" -p zdn-collector
cargo deb --locked --no-build --strip --profile "$profile" -p zdn-client
debs=(target/debian/zdn-agent_*.deb target/debian/zdn-collector_*.deb target/debian/zdn-client_*.deb)

echo "--- lintian"
lintian --fail-on error "${debs[@]}" || { echo "lintian found errors" >&2; exit 1; }

echo "--- install"
dpkg -i "${debs[@]}"
units=(/lib/systemd/system/zdn-agent.service /lib/systemd/system/zdn-collector.service)
systemd-analyze verify "${units[@]}"
for unit in "${units[@]}"; do
  printf '%s: ' "$(basename "$unit")"
  systemd-analyze security --offline=true "$unit" 2>/dev/null | tail -1
done
getent passwd zdn-agent zdn-collector
stat -c '%A %U:%G %n' /etc/zdn/agent.toml /etc/zdn/collector.toml /var/lib/zdn-agent /var/lib/zdn-collector
test "$(stat -c '%a %U' /var/lib/zdn-collector)" = "700 zdn-collector"
/usr/bin/zdn-agent --version
/usr/bin/zdn-collector --version
/usr/bin/zdn --version
# The analysts' client is a client only: no capture, no store.
! ldd /usr/bin/zdn | grep -qE 'pcap|sqlite|pq'
! strings /usr/bin/zdn | grep -qE 'SQLite format 3|rusqlite|pnet_datalink|tokio_postgres'
# The operators' guide beside each service, and the alert log's rotation (checked by logrotate).
test -s /usr/share/doc/zdn-agent/OPERATING.md && test -s /usr/share/doc/zdn-collector/OPERATING.md
rotation=$(logrotate --debug /etc/logrotate.d/zdn-agent 2>&1)
grep -q "rotating pattern: /var/log/zdn-agent/" <<<"$rotation" && ! grep -q "unknown option" <<<"$rotation"
for page in zdn-agent zdn-agent-run zdn-collector zdn-collector-pki-show-publish-key zdn zdn-watch; do
  zcat "/usr/share/man/man1/$page.1.gz" | grep -q '^\.SH NAME'
done
for bin in zdn-agent zdn-collector zdn; do grep -q "complete -F" "/usr/share/bash-completion/completions/$bin"; done

echo "--- purge"
dpkg --purge zdn-agent zdn-collector zdn-client
test ! -e /usr/bin/zdn-agent && test ! -e /usr/bin/zdn && test ! -e /etc/zdn/agent.toml && test ! -e /etc/logrotate.d/zdn-agent && test ! -e /lib/systemd/system/zdn-collector.service
test -d /var/lib/zdn-collector # kept on purge: database, PKI, publishing key
echo "packages: built, lint-clean, installed, verified, purged"
