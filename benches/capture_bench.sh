#!/usr/bin/env bash
# Live capture bench: `tcpscope capture` (full analysis, Parquet output) beside `tcpdump -w /dev/null`
# and `netsniff-ng --out /dev/null -S 256MiB` (which only copy), on identical `tcpreplay --topspeed`
# traffic sent into a veth pair inside a network namespace made here and deleted on exit.
# Reports, per tool: packets sent, delivered, kernel drops, CPU seconds (user+sys of the tool) per
# million packets delivered; then the drain rate of a full tcpscope ring.
#
# Debian packages it needs (installed when missing, as root): iproute2 tcpreplay tcpdump
# netsniff-ng time ethtool util-linux (taskset).
#
# Usage: benches/capture_bench.sh [--quick] [--rps]
#   --quick  one repetition of 200k packets instead of three of 1M
#   --rps    mode B of research/capture.md §4: the receive softirq runs on the capture CPU
#            (rps_cpus), so kernel delivery and the reader share one core
# Traffic: gen-capture many-connections 20000 2000 (20k short TCP connections, 200k packets), looped.
# Only 198.18.0.0/15 addresses; frames go to an unknown MAC, so the namespace's IP stack drops them.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "capture_bench.sh: needs root (network namespace, AF_PACKET)" >&2; exit 1; }
quick=0; rps=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --rps) rps=1 ;;
    *) echo "usage: $0 [--quick] [--rps]" >&2; exit 2 ;;
  esac
done

need=""
for p in iproute2 tcpreplay tcpdump netsniff-ng time ethtool util-linux; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
if [ -n "$need" ]; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

cargo build --release -q -p tcpscope -p tcpscope-benches
bin=$PWD/target/release/tcpscope
data=bench-data; mkdir -p "$data"
pcap=$data/capbench.pcap
[ -s "$pcap" ] || target/release/gen-capture many-connections 20000 2000 "$pcap"
per_file=$(tcpdump -r "$pcap" -nn 2>/dev/null | wc -l)
if [ $quick = 1 ]; then loops=1; reps=1; else loops=5; reps=3; fi

ns=tcpscope-capbench-$$
work=$(mktemp -d)
cleanup() {
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip -n "$ns" link add vtx type veth peer name vrx
for d in vtx vrx; do
  ip -n "$ns" link set "$d" addrgenmode none
  ip netns exec "$ns" ethtool -K "$d" tso off gso off gro off >/dev/null 2>&1 || true
  ip -n "$ns" link set "$d" up
done
cores=$(nproc)
gen_cpu=0; cap_cpu=$(( cores > 1 ? 1 : 0 ))
if [ $rps = 1 ]; then
  printf '%x' $(( 1 << cap_cpu )) | ip netns exec "$ns" tee /sys/class/net/vrx/queues/rx-0/rps_cpus >/dev/null
fi
nsx() { ip netns exec "$ns" "$@"; }
rx_packets() { nsx cat /sys/class/net/vrx/statistics/rx_packets; }
# stop PID: SIGINT, then up to 30 s for a clean exit, then SIGKILL (reported).
stop() {
  kill -INT "$1" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  echo "capture_bench.sh: pid $1 did not stop within 30 s of SIGINT; killed" >&2
  kill -9 "$1" 2>/dev/null || true
}

# One run: TOOL → "sent arrived delivered drops cpu_seconds"
run_one() {
  local tool=$1 out=$work/$1.out log=$work/$1.log timef=$work/$1.time pid
  rm -rf "$out"; : > "$log"
  case $tool in
    tcpscope)
      ip netns exec "$ns" /usr/bin/time -f '%U %S' -o "$timef" "$bin" capture -i vrx --out "$out" --cpus "$cap_cpu" \
        --readers 1 --workers 1 --stats-interval 0 >"$log" 2>&1 &
      pid=$!
      for _ in $(seq 100); do [ -s "$out/stats.json" ] && break; sleep 0.1; done ;;
    tcpdump)
      ip netns exec "$ns" /usr/bin/time -f '%U %S' -o "$timef" taskset -c "$cap_cpu" tcpdump -i vrx -B 262144 -w /dev/null >"$log" 2>&1 &
      pid=$!; sleep 2 ;;
    netsniff-ng)
      ip netns exec "$ns" /usr/bin/time -f '%U %S' -o "$timef" taskset -c "$cap_cpu" netsniff-ng --in vrx --out /dev/null \
        --silent -A -Q -N -S 256MiB >"$log" 2>&1 &
      pid=$!; sleep 2 ;;
    none) pid=""; : > "$timef" ;;
  esac
  local rx0 rx1 sent
  rx0=$(rx_packets)
  local replay; replay=$(nsx taskset -c "$gen_cpu" tcpreplay -i vtx -K --topspeed --loop "$loops" "$pcap" 2>&1)
  sent=$(awk '/Actual:/ {print $2; exit}' <<<"$replay")
  kpps=$(awk '/Rated:/ {printf "%.0f", $(NF-1) / 1000; exit}' <<<"$replay")
  sleep 1
  rx1=$(rx_packets)
  if [ -n "$pid" ]; then
    # $pid is /usr/bin/time (ip netns exec execs it); the tool is its child.
    local tpid; tpid=$(pgrep -P "$pid" | head -1 || true)
    [ -n "$tpid" ] && stop "$tpid"
    wait "$pid" 2>/dev/null || true
  fi
  local delivered=- drops=- cpu=-
  case $tool in
    tcpscope)
      delivered=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["packets_received"], s["kernel_drops"])' "$out/stats.json")
      drops=${delivered#* }; delivered=${delivered% *} ;;
    tcpdump)
      delivered=$(awk '/packets captured/ {print $1}' "$log"); drops=$(awk '/dropped by kernel/ {print $1}' "$log") ;;
    netsniff-ng)
      # "N packets incoming", "N packets passed filter", "N packets failed filter (out of space)"
      delivered=$(tr '\r' '\n' < "$log" | awk '/packets passed filter/ {print $1}' | tail -1)
      drops=$(tr '\r' '\n' < "$log" | awk '/failed filter/ {print $1}' | tail -1) ;;
  esac
  [ -s "$timef" ] && cpu=$(tail -1 "$timef" | awk '{printf "%.2f", $1 + $2}')
  echo "$sent ${kpps:--} $(( rx1 - rx0 )) ${delivered:--} ${drops:--} $cpu"
}

echo "capture bench: $(uname -r), $cores CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); mode $([ $rps = 1 ] && echo 'B (rps on the capture CPU)' || echo 'A (no RPS)')"
echo "traffic: $pcap ($per_file packets) x $loops loops, tcpreplay --topspeed on CPU $gen_cpu; tools on CPU $cap_cpu"
printf '%-12s %4s %10s %9s %10s %10s %10s %8s %12s\n' tool run sent send_kpps arrived delivered k_drops cpu_s cpu_s/Mpkt
for tool in none tcpscope tcpdump netsniff-ng; do
  for r in $(seq "$reps"); do
    read -r sent kpps arrived delivered drops cpu < <(run_one "$tool")
    per="-"
    if [ "$cpu" != "-" ] && [ "$delivered" != "-" ] && [ "$delivered" -gt 0 ] 2>/dev/null; then
      per=$(awk -v c="$cpu" -v d="$delivered" 'BEGIN {printf "%.3f", c / (d / 1e6)}')
    fi
    printf '%-12s %4s %10s %9s %10s %10s %10s %8s %12s\n' "$tool" "$r" "$sent" "$kpps" "$arrived" "$delivered" "$drops" "$cpu" "$per"
  done
done

# Drain rate: the reader sleeps while one loop of traffic fills its ring, then empties it.
echo
echo "drain of a full ring (tcpscope reader waits 4 s, then reads what piled up):"
out=$work/drain
ip netns exec "$ns" "$bin" capture -i vrx --out "$out" --cpus "$cap_cpu" --readers 1 --workers 1 --stats-interval 0 \
  --block-timeout 100 --debug-start-delay 4000 >"$work/drain.log" 2>&1 &
dpid=$!
for _ in $(seq 100); do [ -s "$out/stats.json" ] && break; sleep 0.1; done
nsx taskset -c "$gen_cpu" tcpreplay -i vtx -K --topspeed "$pcap" >/dev/null 2>&1
sleep 4
stop "$dpid"
wait "$dpid" 2>/dev/null || true
grep -E 'drained|stopped|TCP segments' "$work/drain.log" || cat "$work/drain.log"
