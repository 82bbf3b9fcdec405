#!/usr/bin/env bash
# Regenerates tshark-names.tsv: what tshark (Wireshark's dissectors, an independent reference)
# finds in each capture of ../shared/data/pcap/suricata-verify/ — DNS query names, TLS/QUIC
# ClientHello server names, HTTP request hosts — one "capture<TAB>field<TAB>value" per line.
# Made with TShark 4.0.17 (Debian 12): cd agent/tests/data && ./make-tshark-names.sh > tshark-names.tsv
set -euo pipefail
suite="$(dirname "$0")/../../../../shared/data/pcap/suricata-verify"
for dir in "$suite"/*/; do
  name=$(basename "$dir")
  for f in "$dir"*.pcap "$dir"*.pcapng; do
    [ -f "$f" ] || continue
    timeout 60 tshark -n -r "$f" -Y 'dns.flags.response == 0 || tls.handshake.type == 1 || http.request' \
      -T fields -E separator=/t -e dns.qry.name -e tls.handshake.extensions_server_name -e http.host 2>/dev/null |
    awk -F'\t' -v n="$name" '
      { split($1, q, ","); for (i in q) if (q[i] != "" && q[i] != "<Root>") print n "\tdns" "\t" tolower(q[i]);
        if ($2 != "") print n "\tsni\t" tolower($2);
        if ($3 != "") print n "\thttp_host\t" tolower($3) }' || true
  done
done | LC_ALL=C sort -u
