#!/usr/bin/env bash
# Live capture, the TPACKET_V3 ring against pnet's socket, side by side in one run: a sender in
# one network namespace (agent/examples/frame_sender.rs, sendmmsg) pushes frames through a
# veth pair to `zdn-agent run` in another; for each input, rate and worker count the two
# methods run alternately, ROUNDS times. Each row: the rate the sender reached, packets the
# agent analysed, packets the kernel dropped at the agent's socket (PACKET_STATISTICS) and
# ring freezes, packets lost before the socket (sent − analysed − dropped: the veth's
# backlog), and the agent's CPU seconds (user + system, all threads, from /proc) per million
# packets analysed. Needs root and release builds:
#
#   cargo build --release -p zdn-agent --bin zdn-agent --example frame_sender
#   [ROUNDS=3] [RATES="300000 500000 top"] [WORKERS="1 2"] [INPUTS="storm mix"] \
#     agent/benches/capture-methods.sh TRAILS
#
# TRAILS: indicator files or directories for the mix (comma-separated), e.g. Maltrail's static
# trails unpacked from ../shared/data/indicators/maltrail-static.tar.xz. Inputs, made here:
#   storm  1,000,000 TCP SYNs from 4,000 hosts 10.0.x.y to one listed address (every packet a hit)
#   mix    525,000 frames of agent/benches/maltrail-mix.py's mix (bulk TLS, SYNs, DNS, HTTP, other)
set -euo pipefail
trails=$1
rounds=${ROUNDS:-3}
root="$(cd "$(dirname "$0")/../.." && pwd)"
agent="$root/target/release/zdn-agent"
sender="$root/target/release/examples/frame_sender"
work=$(mktemp -d)
cleanup() {
  if [[ -n ${pid:-} ]]; then kill "$pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  ip netns del zdn-cap-a 2>/dev/null || true
  ip netns del zdn-cap-b 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 "$root/agent/benches/maltrail-mix.py" "$work/mix.pcap" 105 >/dev/null
python3 - "$work/storm.pcap" <<'PY'
import struct, sys
out = open(sys.argv[1], "wb")
out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
for i in range(4000):
    src = bytes([10, 0, i // 250, i % 250 + 1])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0x4000, 64, 6, 0, src, bytes([203, 0, 113, 99]))
    tcp = struct.pack("!HHIIBBHHH", 40000 + i % 20000, 443, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    frame = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp
    out.write(struct.pack("<IIII", 1_700_000_000, 0, len(frame), len(frame)) + frame)
PY
echo 203.0.113.99 > "$work/storm-list.txt"
declare -A capture=([storm]="$work/storm.pcap" [mix]="$work/mix.pcap")
declare -A loops=([storm]=250 [mix]=5000)
declare -A list=([storm]="$work/storm-list.txt" [mix]="$trails")

ip netns add zdn-cap-a
ip netns add zdn-cap-b
ip link add veth-a netns zdn-cap-a type veth peer name veth-b netns zdn-cap-b
for ns in zdn-cap-a zdn-cap-b; do
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n $ns link set lo up
done
ip -n zdn-cap-a link set veth-a up
ip -n zdn-cap-b link set veth-b up

toml_list() { local out=""; for item in ${1//,/ }; do out+="\"$item\","; done; echo "$out"; }
metric() { ip netns exec zdn-cap-b bash -c 'exec 3<>/dev/tcp/127.0.0.1/9477; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3' |
  awk -v m="$1" '$1 == m { print $2 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One run: INPUT METHOD WORKERS RATE → one table row.
run_one() {
  local input=$1 method=$2 workers=$3 rate=$4
  cat > "$work/agent.toml" <<TOML
state_dir = "$work/state-$method"
home_net = ["10.0.0.0/8"]
[capture]
interfaces = ["veth-b"]
workers = $workers
method = "$method"
[indicators]
sync = false
local = [$(toml_list "${list[$input]}")]
[sightings]
max_open = 1000000
[metrics]
listen = "127.0.0.1:9477"
TOML
  ip netns exec zdn-cap-b "$agent" --log-format json run --config "$work/agent.toml" 2>"$work/agent.log" &
  pid=$!
  for _ in $(seq 600); do grep -q "live capture open" "$work/agent.log" && break; sleep 0.1; done
  sleep 1
  local cpu0 seen0 flag out
  cpu0=$(cpu_ticks $pid)
  seen0=$(metric zdn_agent_packets_total)
  if [[ $rate == top ]]; then flag=--topspeed; else flag=--pps=$rate; fi
  out=$(ip netns exec zdn-cap-a "$sender" --interface veth-a $flag --loop="${loops[$input]}" "${capture[$input]}")
  sleep 2
  local cpu1 seen drops freezes sent offered
  cpu1=$(cpu_ticks $pid)
  seen=$(( $(metric zdn_agent_packets_total) - seen0 ))
  drops=$(metric zdn_agent_packets_dropped_kernel_total)
  freezes=$(metric zdn_agent_capture_queue_freezes_total)
  kill $pid; wait $pid 2>/dev/null || true; pid=
  sent=$(sed -E 's/^sent ([0-9]+) frames.*/\1/' <<<"$out")
  offered=$(sed -E 's/.* = ([0-9]+) packets\/s.*/\1/' <<<"$out")
  awk -v i="$input" -v m="$method" -v w="$workers" -v r="$rate" -v o="$offered" -v s="$sent" -v a="$seen" \
      -v d="$drops" -v f="$freezes" -v c=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {
    printf "| %s | %s | %s | %s | %d | %d | %d (%.1f %%) | %d | %d | %.2f |\n", i, m, w, r, o, a, d, 100 * d / s, f,
      s - a - d, a ? c / hz / a * 1e6 : 0 }'
}

echo "| input | method | workers | rate asked | offered packets/s | analysed | kernel drops | ring freezes | lost before the socket | CPU s per M packets |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for input in ${INPUTS:-storm mix}; do
  for workers in ${WORKERS:-1 2}; do
    for rate in ${RATES:-300000 500000 top}; do
      for _ in $(seq "$rounds"); do
        for method in socket ring; do
          run_one "$input" "$method" "$workers" "$rate"
        done
      done
    done
  done
done
