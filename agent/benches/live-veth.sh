#!/usr/bin/env bash
# Live capture rate: tcpreplay sends a capture from one network namespace through a veth pair
# to another, where `zdn-agent run` captures it; the agent's /metrics then says how many packets
# it read and how many the kernel dropped. Needs root, tcpreplay, a release build.
#
#   agent/benches/live-veth.sh CAPTURE LIST [WORKERS] [TCPREPLAY-RATE-OPTION]
#   e.g. agent/benches/live-veth.sh /tmp/storm.pcap /tmp/storm-list.txt 1 --pps=230000
#        agent/benches/live-veth.sh /tmp/storm.pcap /tmp/storm-list.txt 1 --topspeed
# (docs/BENCHMARKS.md says how /tmp/storm.pcap is made.)
set -euo pipefail
capture=$1 list=$2 workers=${3:-1} rate=${4:---topspeed}
agent="$(cd "$(dirname "$0")/../.." && pwd)/target/release/zdn-agent"
dir=$(mktemp -d)
cleanup() { kill "${pid:-0}" 2>/dev/null || true; wait 2>/dev/null || true; ip netns del zdn-bench-a 2>/dev/null || true; ip netns del zdn-bench-b 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ip netns add zdn-bench-a
ip netns add zdn-bench-b
ip link add veth-a netns zdn-bench-a type veth peer name veth-b netns zdn-bench-b
ip -n zdn-bench-a link set veth-a up
ip -n zdn-bench-b link set veth-b up
ip -n zdn-bench-b link set lo up
cat > "$dir/agent.toml" <<TOML
state_dir = "$dir/state"
home_net = ["10.0.0.0/8"]
[capture]
interfaces = ["veth-b"]
workers = $workers
[indicators]
sync = false
local = ["$list"]
[metrics]
listen = "127.0.0.1:9477"
TOML
ip netns exec zdn-bench-b "$agent" run --config "$dir/agent.toml" 2>"$dir/agent.log" &
pid=$!
sleep 1.5
ip netns exec zdn-bench-a tcpreplay -i veth-a "$rate" "$capture" 2>&1 | grep -E "Actual|Rated"
sleep 2
ip netns exec zdn-bench-b bash -c 'exec 3<>/dev/tcp/127.0.0.1/9477; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3' |
  grep -E "^zdn_agent_(packets_total|packets_dropped_kernel_total|hits_total)"
