#!/usr/bin/env bash
# Whole-process timing of indicator publishing at CERT scale, on the shared data: the 1.85M
# Maltrail trails and the MISP warninglists (../shared/data). Usage:
#   collector/benches/publishing.sh [BIN_DIR]
# BIN_DIR holds zdn-agent, zdn-collector and zdn (default: target/release, built here); give
# an earlier release's binaries to compare. Prints:
#   - `zdn-agent check-indicators` with and without every warninglist (farm-bench, medians);
#   - `zdn-collector serve` with both configured: seconds from start to READY=1;
#   - `zdn indicators false-positive`: seconds per mark, start to answer (published version);
#   - `zdn indicators import` of the trails directory (50 MB) over gRPC.
# RUNS (default 5) and MARKS (default 5) set the number of timed runs and marks; an earlier
# release rebuilds for minutes per run, so RUNS=1 MARKS=1 for it. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release}
if [ "$bin" = target/release ]; then cargo build -q --release -p zdn-agent -p zdn-collector -p zdn-client; fi
bin=$(realpath "$bin")
dir=$(mktemp -d)
trap 'kill "$served" 2>/dev/null; rm -rf "$dir"' EXIT
served=
tar -xJf ../shared/data/indicators/maltrail-static.tar.xz -C "$dir"
tar -xJf ../shared/data/warninglists/misp-warninglists.tar.xz -C "$dir"
trails=$dir/static lists=$dir/misp-warninglists/lists

echo "--- check-indicators (trails only, then with every warninglist)"
runs=${RUNS:-5} warmup=$(( ${RUNS:-5} > 1 ? 1 : 0 ))
farm-bench -n "$runs" --warmup "$warmup" --timeout 900 -- "$bin/zdn-agent" check-indicators --indicators "$trails"
farm-bench -n "$runs" --warmup "$warmup" --timeout 1800 -- \
  "$bin/zdn-agent" check-indicators --indicators "$trails" --allowlist "$lists"

"$bin/zdn-collector" pki init --dir "$dir/pki" >/dev/null
admin=$("$bin/zdn-collector" pki issue --dir "$dir/pki" --participant z-cert --role admin --name bench | tail -1)
cat >"$dir/collector.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$dir/data"
identity = "$dir/pki/collector"
indicators = ["$trails"]
allowlists = ["$lists"]
[console]
enabled = false
TOML
echo "--- serve: start to READY (log line 'collector listening')"
start=$(date +%s.%N)
"$bin/zdn-collector" --log-format json serve --config "$dir/collector.toml" 2>"$dir/log" &
served=$!
until grep -q '"collector listening"' "$dir/log"; do
  kill -0 "$served" || { cat "$dir/log"; exit 1; }
  sleep 0.05
done
echo "ready after $(echo "$(date +%s.%N) - $start" | bc) s"
url=https://$(grep '"collector listening"' "$dir/log" | sed 's/.*"addr":"\([^"]*\)".*/\1/')

echo "--- false-positive marks (seconds each, start of zdn to its answer)"
for value in $(grep -hv '^#' "$trails"/malware/*.txt | grep -E '^[a-z0-9.-]+\.[a-z]+$' | head -"${MARKS:-5}"); do
  t0=$(date +%s.%N)
  "$bin/zdn" --collector "$url" --identity "$admin" indicators false-positive "$value" --reason bench >/dev/null
  echo "$value $(echo "$(date +%s.%N) - $t0" | bc) s"
done

echo "--- import of the trails directory over gRPC"
t0=$(date +%s.%N)
if "$bin/zdn" --collector "$url" --identity "$admin" indicators import "$trails" --name trails >"$dir/import" 2>&1; then
  echo "imported and published in $(echo "$(date +%s.%N) - $t0" | bc) s"
else
  echo "import failed after $(echo "$(date +%s.%N) - $t0" | bc) s:"; tail -3 "$dir/import"
fi

echo "--- republish (SIGHUP): everything loaded again and published as the next version"
published() { grep -c '"published a new indicator set version"' "$dir/log" || true; }
before=$(published)
t0=$(date +%s.%N)
kill -HUP "$served"
until [ "$(published)" -gt "$before" ]; do sleep 0.05; done
echo "republished in $(echo "$(date +%s.%N) - $t0" | bc) s"
