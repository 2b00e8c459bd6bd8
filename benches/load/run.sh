#!/usr/bin/env bash
# A load run over HTTP: the release proxy (`serve`, pinned to one core) against the built-in
# sandbox as a separate process (an upstream that answers at once), driven by wrk on the other
# core, every request a new booking. Reports the proxy's own CPU time per booking (from
# /proc/PID/stat), throughput, latency, RSS, how long the proxy took to start on its store, and
# what a synced write costs on the disk DB_DIR is on (a tmpfs such as /dev/shm makes it nothing,
# which leaves the proxy's own work).
#
#   cargo build --release
#   bash benches/load/run.sh [DB_DIR] [SECONDS] [CONNECTIONS]
#   FSP_LOAD_DELAY_MS=N ...   each connection waits N ms after each answer (a rate below the peak)
#   FSP_LOAD_GET=/fhir/metadata ...   that GET instead of bookings
#   FSP_LOAD_METRICS=FILE ...   keep the proxy's /metrics (store and Salesforce latencies)
#
# DB_DIR holds (or gets) appointments.db: run it on a fresh directory, and on one the store
# benchmark filled (`FSP_BENCH_DIR=DIR cargo bench --bench store`) to see the cost with a
# million appointments stored. wrk comes from Debian's packages (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/fhir-salesforce-proxy
[ -x "$bin" ] || { echo "build it first: cargo build --release" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
db_dir=${1:-$(mktemp -d)}
seconds=${2:-20}
connections=${3:-16}
mkdir -p "$db_dir"
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Runs a command on one core; always in a subshell or background job, so exec keeps its pid.
pin() { if command -v taskset >/dev/null; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

sandbox_port=$(free_port)
proxy_port=$(free_port)
pin 0 "$bin" sandbox --listen "127.0.0.1:$sandbox_port" >/dev/null 2>&1 &
sandbox_pid=$!
key="load-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
key_hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
cp mappings/example.toml "$work/mapping.toml"
cat > "$work/proxy.toml" <<TOML
[server]
listen = "127.0.0.1:$proxy_port"
[salesforce]
token_url = "http://127.0.0.1:$sandbox_port/services/oauth2/token"
client_id = "sandbox-client"
[mapping]
file = "mapping.toml"
[store]
path = "$db_dir/appointments.db"
[auth]
[[auth.clients]]
id = "load"
scopes = ["system/Appointment.*"]
api_key_sha256 = "$key_hash"
TOML
trap 'kill $sandbox_pid ${proxy_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 0.2   # the sandbox binds at once; this only lets it print its line

# What one synced commit costs on this disk: every group commit of the store pays one fsync, and on
# a virtual disk that is tens to hundreds of µs of the process's own CPU (kernel time), which
# varies with the host. Measured where the store lives.
python3 - "$db_dir" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], ".fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
wall, cpu = time.perf_counter(), time.process_time()
for i in range(200):
    os.pwrite(fd, b"x" * 4096, i * 4096)
    os.fsync(fd)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
os.close(fd)
os.unlink(path)
print(f"this disk: a 4 KiB write + fsync takes {wall / 200 * 1e6:.0f} µs, {cpu / 200 * 1e6:.0f} µs of CPU")
PY

started=$(date +%s.%N)
FSP_SALESFORCE__CLIENT_SECRET=sandbox-secret RUST_LOG=info \
  pin 1 "$bin" serve --config "$work/proxy.toml" 2>"$work/proxy.log" &
proxy_pid=$!
until grep -q "proxy started" "$work/proxy.log"; do
  kill -0 $proxy_pid 2>/dev/null || { cat "$work/proxy.log"; exit 1; }
  sleep 0.01
done
ready=$(date +%s.%N)
echo "start over the store: $(python3 -c "print(f'{($ready - $started) * 1000:.0f} ms')")"

ticks() { awk '{print $14 + $15}' /proc/$proxy_pid/stat; }
rss() { awk -v k="$1:" '$1 == k {printf "%.1f MB", $2 / 1024}' /proc/$proxy_pid/status; }
hz=$(getconf CLK_TCK)
# Warm up: the token, connection pools, prepared statements.
curl -s -o /dev/null -X POST "http://127.0.0.1:$proxy_port/fhir/Appointment" \
  -H 'Content-Type: application/fhir+json' -H "X-API-Key: $key" --data-binary @examples/appointment.json
before=$(ticks)
# FSP_LOAD_PERF=FILE also records where the proxy spends its CPU (perf from Debian's linux-perf).
if [ -n "${FSP_LOAD_PERF:-}" ]; then
  perf record -F 499 --call-graph dwarf,16384 -p $proxy_pid -o "$FSP_LOAD_PERF" -- sleep "$seconds" \
    >/dev/null 2>&1 &
fi
out=$(FSP_LOAD_BODY=examples/appointment.json FSP_LOAD_KEY="$key" FSP_LOAD_RUN="$RANDOM$RANDOM" \
  FSP_LOAD_GET="${FSP_LOAD_GET:-}" FSP_LOAD_DELAY_MS="${FSP_LOAD_DELAY_MS:-0}" \
  pin 0 wrk -t1 -c"$connections" -d"${seconds}s" -s benches/load/book.lua \
  "http://127.0.0.1:$proxy_port" 2>&1)
after=$(ticks)
echo "$out" | grep -E "Requests/sec|status|p50|Socket errors|rror" || true
requests=$(echo "$out" | awk '/requests in/ {print $1}')
python3 - "$before" "$after" "$hz" "$requests" <<'PY'
import sys
before, after, hz, requests = map(float, sys.argv[1:])
cpu = (after - before) / hz
print(f"proxy CPU: {cpu:.2f} s for {requests:.0f} requests = {cpu / requests * 1e6:.0f} µs per request")
PY
echo "proxy RSS now $(rss VmRSS), peak $(rss VmHWM) at $connections connections" \
  "(anonymous $(rss RssAnon), file-backed $(rss RssFile); $(awk '$1 == "Threads:" {print $2}' /proc/$proxy_pid/status) threads)"
[ -z "${FSP_LOAD_LOG:-}" ] || cp "$work/proxy.log" "$FSP_LOAD_LOG"
# FSP_LOAD_METRICS=FILE keeps the proxy's /metrics after the run (store and Salesforce latencies).
[ -z "${FSP_LOAD_METRICS:-}" ] || curl -s "http://127.0.0.1:$proxy_port/metrics" > "$FSP_LOAD_METRICS"
