#!/usr/bin/env bash
# Set up and run the demo booth: replay cameras, a local Mosquitto and the cloud simulator.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tools/setup.sh"
cd "$ROOT"
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  mkdir -p var
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' > var/mosquitto-demo.conf
  "$MOSQUITTO" -c var/mosquitto-demo.conf >var/mosquitto-demo.log 2>&1 &
  pids+=($!)
fi
.venv/bin/edge-grader cloud-sim --host 127.0.0.1 --port 8090 --key demo-key --storage var/cloud-sim >var/cloud-sim.log 2>&1 &
pids+=($!)

cat <<'MSG'
Demo booth starting on http://127.0.0.1:8080 (replay cameras, MQTT on 127.0.0.1:1883).
In another terminal:
  .venv/bin/edge-grader trigger --config config/demo.toml --imei 490154203237518 --wait
  mosquitto_sub -h 127.0.0.1 -t 'vision-grader/#' -v
MSG
.venv/bin/edge-grader run --config config/demo.toml
