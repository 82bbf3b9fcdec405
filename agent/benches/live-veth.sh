#!/usr/bin/env bash
# Live capture rate: a sender in one network namespace sends captures through a veth pair to
# another, where `zdn-agent run` captures them; the agent's /metrics then says how many packets
# it read and how many the kernel dropped. Needs root and a release build (`cargo build
# --release -p zdn-agent --example frame_sender`); tcpreplay for SENDER=tcpreplay.
#
#   [SENDER=tcpreplay|zdn] [LOOPS=N] agent/benches/live-veth.sh CAPTURE LIST [WORKERS] [RATE]
#   RATE: --pps=N or --topspeed (both senders take them). CAPTURE: a file, or for SENDER=zdn a
#   directory whose captures are all sent (their Ethernet frames). LIST: indicator files or
#   directories, comma-separated. HOME_NET (default 10.0.0.0/8; empty: every destination is
#   external, as `replay` without --home-net).
#   e.g. agent/benches/live-veth.sh /tmp/storm.pcap /tmp/storm-list.txt 1 --pps=230000
#        SENDER=zdn agent/benches/live-veth.sh /tmp/storm.pcap /tmp/storm-list.txt 1 --pps=600000
#        SENDER=zdn LOOPS=200 agent/benches/live-veth.sh ../shared/data/pcap/suricata-verify /tmp/trails/static 1 --topspeed
# (docs/BENCHMARKS.md says how /tmp/storm.pcap is made.)
set -euo pipefail
capture=$1 list=$2 workers=${3:-1} rate=${4:---topspeed}
root="$(cd "$(dirname "$0")/../.." && pwd)"
agent="$root/target/release/zdn-agent"
sender="$root/target/release/examples/frame_sender"
toml_list() { local out=""; for item in "$@"; do out+="\"$item\","; done; echo "$out"; }
dir=$(mktemp -d)
cleanup() { if [[ -n ${pid:-} ]]; then kill "$pid" 2>/dev/null || true; fi; wait 2>/dev/null || true; ip netns del zdn-bench-a 2>/dev/null || true; ip netns del zdn-bench-b 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ip netns add zdn-bench-a
ip netns add zdn-bench-b
ip link add veth-a netns zdn-bench-a type veth peer name veth-b netns zdn-bench-b
ip -n zdn-bench-a link set veth-a up
ip -n zdn-bench-b link set veth-b up
ip -n zdn-bench-b link set lo up
cat > "$dir/agent.toml" <<TOML
state_dir = "$dir/state"
home_net = [$(toml_list ${HOME_NET-10.0.0.0/8})]
[capture]
interfaces = ["veth-b"]
workers = $workers
[indicators]
sync = false
local = [$(toml_list ${list//,/ })]
[metrics]
listen = "127.0.0.1:9477"
TOML
ip netns exec zdn-bench-b "$agent" --log-format json run --config "$dir/agent.toml" 2>"$dir/agent.log" &
pid=$!
for _ in $(seq 300); do grep -q "indicator set loaded" "$dir/agent.log" && break; sleep 0.1; done
sleep 1
grep -m1 -oE "\"indicators\":[0-9]+" "$dir/agent.log" || true
if [[ ${SENDER:-tcpreplay} == zdn ]]; then
  mapfile -t captures < <(if [[ -d $capture ]]; then find "$capture" -name '*.pcap' -o -name '*.pcapng' | sort; else echo "$capture"; fi)
  ip netns exec zdn-bench-a "$sender" --interface veth-a "$rate" --loop="${LOOPS:-1}" "${captures[@]}"
else
  ip netns exec zdn-bench-a tcpreplay -i veth-a --loop="${LOOPS:-1}" "$rate" "$capture" 2>&1 | grep -E "Actual|Rated"
fi
sleep 2
kill -0 "$pid" 2>/dev/null || { echo "the agent stopped:"; tail -20 "$dir/agent.log"; exit 1; }
ip netns exec zdn-bench-b bash -c 'exec 3<>/dev/tcp/127.0.0.1/9477; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3' |
  grep -E "^zdn_agent_(packets_total|packets_dropped_kernel_total|hits_total)"
