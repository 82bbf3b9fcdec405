#!/usr/bin/env python3
"""Write the traffic mix that Maltrail's Rust sensor reports its per-packet cost on.

The specification compares the agent with Maltrail's Rust sensor (272-865 ns/packet). That
sensor's report (sensor/docs/REPORT.md, section 4a) measures a whole-process offline replay of
a generated mix, cycling through 105 frames: 60 bulk TLS segments (1,400 bytes of 0x17 to port
443), 15 SYNs to 443, 10 DNS queries for hostN.example.org to 8.8.8.8, 10 HTTP GETs for
/indexN.html?id=N at www.example.org, 5 ICMP echo requests and 5 mDNS datagrams; the clock
advances one second every 1,000 frames. This script builds the same mix from that description
(our own code, not theirs), so the two sensors can be compared on the same shape of traffic:

    python3 agent/benches/maltrail-mix.py /tmp/maltrail-mix.pcap 1000000
    python3 agent/benches/maltrail-mix.py /tmp/maltrail-mix-1.pcap 1
    python3 agent/benches/maltrail-mix.py /tmp/maltrail-syn.pcap 1000000 syn   # one kind only

The kinds are bulk, syn, dns, http and other (ICMP and mDNS).

docs/BENCHMARKS.md ("Against Maltrail's Rust sensor") gives the replay commands and figures.
"""

import struct
import sys

BASE_SEC = 1_700_000_000
SRC = "10.0.0.5"


def ip_bytes(address):
    return bytes(int(part) for part in address.split("."))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(payload):
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + payload


def ipv4(dst, proto, payload):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                         ip_bytes(SRC), ip_bytes(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def tcp(sport, dport, flags, payload=b""):
    # Checksums of the transport layers are left zero: neither sensor verifies them.
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 1 if flags & 0x10 else 0, 5 << 4, flags,
                       64240, 0, 0) + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def dns_query(name):
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + question + b"\0" + b"\0\x01\0\x01"


def http_get(path, host):
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode()


def icmp_echo():
    body = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + bytes(range(16))
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def templates():
    """(kind, frame) in the order of the mix."""
    frames = []
    for i in range(60):
        frames.append(("bulk", ethernet(ipv4(f"93.184.216.{i % 250}", 6, tcp(50000 + i, 443, 0x10, b"\x17" * 1400)))))
    for i in range(15):
        frames.append(("syn", ethernet(ipv4(f"93.184.216.{i % 250}", 6, tcp(50000 + i, 443, 0x02)))))
    for i in range(10):
        query = dns_query(f"host{i}.example.org")
        frames.append(("dns", ethernet(ipv4("8.8.8.8", 17, udp(40000 + i, 53, query)))))
    for i in range(10):
        request = http_get(f"/index{i}.html?id={i}", "www.example.org")
        frames.append(("http", ethernet(ipv4("93.184.216.34", 6, tcp(50000 + i, 80, 0x18, request)))))
    for _ in range(5):
        frames.append(("other", ethernet(ipv4("8.8.4.4", 1, icmp_echo()))))
        frames.append(("other", ethernet(ipv4("224.0.0.251", 17, udp(5353, 5353, b"\0" * 40)))))
    return frames


def main():
    kinds = {kind for kind, _ in templates()}
    if len(sys.argv) not in (3, 4) or not sys.argv[2].isdigit() or int(sys.argv[2]) == 0:
        sys.exit("usage: maltrail-mix.py OUTPUT.pcap FRAMES [KIND] (FRAMES > 0)")
    if len(sys.argv) == 4 and sys.argv[3] not in kinds:
        sys.exit(f"unknown kind {sys.argv[3]!r}: one of {', '.join(sorted(kinds))}")
    path, count = sys.argv[1], int(sys.argv[2])
    frames = [frame for kind, frame in templates() if len(sys.argv) == 3 or kind == sys.argv[3]]
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(count):
            frame = frames[i % len(frames)]
            out.write(struct.pack("<IIII", BASE_SEC + i // 1000, 0, len(frame), len(frame)))
            out.write(frame)
    mean = sum(len(frames[i % len(frames)]) for i in range(min(count, len(frames)))) / min(count, len(frames))
    print(f"{path}: {count} frames, {mean:.0f} bytes per frame on average")


if __name__ == "__main__":
    main()
