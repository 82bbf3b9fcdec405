#!/usr/bin/env bash
# Whole-process timing of the web console's pages on the demo data: starts `zdn-demo`, signs
# in with its CERT token over HTTPS, fetches every page N times on one kept-alive connection
# (curl), and prints p50/p99/max per page. Usage: collector/benches/console_pages.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200}
dir=$(mktemp -d)
trap 'kill "$demo" 2>/dev/null; rm -rf "$dir"' EXIT
cargo build -q --release -p zdn-demo
target/release/zdn-demo --dir "$dir/demo" --console-listen 127.0.0.1:0 >"$dir/out" 2>&1 &
demo=$!
for _ in $(seq 100); do grep -q 'keeps running' "$dir/out" && break; sleep 0.2; done
base=$(grep -o 'https://127.0.0.1:[0-9]*/' "$dir/out" | tail -1)
token=$(grep "CERT's analyst with" "$dir/out" | awk '{print $NF}')
ca="$dir/demo/pki/ca/ca.pem"
curl -s --cacert "$ca" -c "$dir/jar" -o /dev/null -H "Origin: ${base%/}" -d "token=$token" "${base}login"
printf '%-48s %8s %8s %8s\n' page p50_ms p99_ms max_ms
for page in "" "indicator?value=updates.evil-cdn.example" "sightings" "fleet" "exports" \
    "api/v1/correlations"; do
    urls=()
    for _ in $(seq "$n"); do urls+=(-o /dev/null "${base}${page}"); done
    curl -s --cacert "$ca" -b "$dir/jar" -w '%{time_total}\n' "${urls[@]}" |
        sort -n | awk -v page="/$page" '{ t[NR] = $1 * 1000 }
            END { printf "%-48s %8.2f %8.2f %8.2f\n", page, t[int(NR*0.5)], t[int(NR*0.99)], t[NR] }'
done
