#!/usr/bin/env bash
# Side-by-side: tcpscope beside tshark, tcptrace, NFStream and the tcpdump floor, on the same
# files, on this machine, in one run. Prints seconds, packets/s, peak RSS and ratios.
#
# Usage: benches/bench.sh [--quick]
#   Installs its peers (Debian: tshark tcptrace tcpdump time; PyPI: nfstream in .venv-bench).
#   Inputs (generated, not committed, in bench-data/):
#     perf.pcap   ../shared/research/tcp-analysis-fixtures/gen_perf_pcap.py OUT 200 1000 (301,600 packets)
#     conns.pcap  gen-capture many-connections 100000 2000 (100k short connections, 1M packets)
#     perf-long.pcap gen_perf_pcap.py OUT 200 10000: the same 200 connections, ten times as long
#                 (streaming check: peak RSS must not grow with the file's length)
#     perf10.pcap perf.pcap ten times over with shifted ports: ten times as long and ten times the
#                 connections, all still open at the end (RSS grows by their state)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0; [ "${1:-}" = "--quick" ] && quick=1
data=bench-data; mkdir -p "$data"

need=""
for p in tshark tcptrace tcpdump time; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
if [ -n "$need" ]; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
if ! .venv-bench/bin/python -c 'import nfstream' 2>/dev/null; then
  python3 -m venv .venv-bench && .venv-bench/bin/pip install -q --disable-pip-version-check nfstream
fi

cargo build --release -q -p tcpscope -p tcpscope-benches
bin=target/release/tcpscope
gen=target/release/gen-capture
fixtures=../shared/research/tcp-analysis-fixtures
[ -s "$data/perf.pcap" ] || python3 "$fixtures/gen_perf_pcap.py" "$data/perf.pcap" 200 1000 >/dev/null
[ -s "$data/conns.pcap" ] || "$gen" many-connections 100000 2000 "$data/conns.pcap"
[ -s "$data/perf-long.pcap" ] || python3 "$fixtures/gen_perf_pcap.py" "$data/perf-long.pcap" 200 10000 >/dev/null
[ -s "$data/perf10.pcap" ] || "$gen" repeat 10 "$data/perf.pcap" "$data/perf10.pcap"

cores=$(nproc)
default_workers=$(( cores > 1 ? cores - 1 : 1 ))
results=$(mktemp)

# run NAME FILE COMMAND...: one timed run (wall seconds, peak RSS KiB) appended to $results.
run() {
  local name=$1 file=$2; shift 2
  local log; log=$(mktemp)
  rm -rf bench-data/out
  /usr/bin/time -f '%e %M' -o "$log.time" "$@" >"$log" 2>&1 || { echo "FAILED: $name on $file" >&2; tail -5 "$log" >&2; }
  read -r secs rss < "$log.time"
  echo "$file $name $secs $rss" >> "$results"
  rm -f "$log" "$log.time"
}

nfstream_py='
import sys
from nfstream import NFStreamer
n = 0
for flow in NFStreamer(source=sys.argv[1], statistical_analysis=True, n_dissections=0):
    n += 1
print(n)
'

for f in perf.pcap conns.pcap perf-long.pcap perf10.pcap; do
  path="$data/$f"
  cat "$path" > /dev/null   # every tool reads from a warm page cache, the first one too
  run tcpdump-floor "$f" tcpdump -r "$path" -w /dev/null
  run tcpscope-1w "$f" "$bin" analyze "$path" --out bench-data/out --workers 1 --quiet --no-pin
  run "tcpscope-default-${default_workers}w" "$f" "$bin" analyze "$path" --out bench-data/out --quiet
  [ "$cores" -ge 2 ] && run "tcpscope-${cores}w" "$f" "$bin" analyze "$path" --out bench-data/out --workers "$cores" --quiet
  case $f in perf-long.pcap|perf10.pcap) continue ;; esac
  run tcptrace "$f" tcptrace -l -r -n "$path"
  run nfstream "$f" .venv-bench/bin/python -c "$nfstream_py" "$path"
  if [ $quick = 0 ]; then
    run tshark "$f" tshark -r "$path" -n -o tcp.analyze_sequence_numbers:TRUE -Y tcp.analysis.flags -T fields -e frame.number -e tcp.stream
  fi
done

# What an idle flow costs: peak RSS with 1,000,000 open connections minus that with 10,000.
[ -s "$data/est1m.pcap" ] || "$gen" established 1000000 "$data/est1m.pcap"
[ -s "$data/est10k.pcap" ] || "$gen" established 10000 "$data/est10k.pcap"
rss_of() { /usr/bin/time -f '%M' -o "$data/rss" "$bin" analyze "$1" --out bench-data/out-est --workers 1 --no-pin --quiet \
             --max-flows 2000000 --idle-timeout 1000000 >/dev/null 2>&1; rm -rf bench-data/out-est; cat "$data/rss"; }
small=$(rss_of "$data/est10k.pcap"); big=$(rss_of "$data/est1m.pcap")
echo "idle flow cost: $(( (big - small) * 1024 / 990000 )) bytes per flow (peak RSS ${small} KiB with 10k flows, ${big} KiB with 1M)"

python3 - "$results" "$data" "$default_workers" <<'PY'
import sys, subprocess, os
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
data, dw = sys.argv[2], sys.argv[3]
def packets(f):
    out = subprocess.run(["target/release/tcpscope", "analyze", os.path.join(data, f), "--out", "bench-data/out-count", "--workers", "1", "--no-pin"], capture_output=True, text=True).stderr
    for line in out.splitlines():
        if "packets (" in line:
            return int(line.split("tcpscope: ")[1].split()[0])
    return 0
by_file = {}
for f, name, secs, rss in rows:
    by_file.setdefault(f, []).append((name, float(secs), int(rss)))
for f, runs in by_file.items():
    n = packets(f)
    ref = dict((name, s) for name, s, _ in runs).get(f"tcpscope-default-{dw}w") or 1e-9
    print(f"\n{f}: {n:,} packets")
    print(f"| tool | seconds | packets/s | peak RSS MiB | time ÷ tcpscope-default-{dw}w |")
    print("|---|---:|---:|---:|---:|")
    for name, s, rss in runs:
        print(f"| {name} | {s:.2f} | {n / max(s, 1e-9):,.0f} | {rss / 1024:.1f} | {s / ref:.2f} |")
PY
rm -f "$results"
