#!/usr/bin/env bash
# Install the booth as a systemd service on Raspberry Pi OS (run as root from a checkout):
#   sudo systemd/install.sh
# Idempotent: re-running upgrades the code and keeps /etc/edge-grader and the spool.
set -euo pipefail

PREFIX=/opt/edge-grader
ETC=/etc/edge-grader
USER_NAME=edge-grader
SRC=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv' 2>/dev/null || need+=(python3-venv)
command -v sqlite3 >/dev/null || need+=(sqlite3)  # the README's queries of the spool
# picamera2 and libcamera come from Raspberry Pi OS, built against its numpy.
if apt-cache policy python3-picamera2 2>/dev/null | grep -q Candidate; then
  dpkg -s python3-picamera2 >/dev/null 2>&1 || need+=(python3-picamera2)
fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi

getent group gpio >/dev/null || groupadd --system gpio
getent group video >/dev/null || groupadd --system video
id "$USER_NAME" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/edge-grader --shell /usr/sbin/nologin \
  --groups video,gpio "$USER_NAME"

mkdir -p "$PREFIX"
cp -r "$SRC/edge" "$SRC/models" "$SRC/config" "$SRC/pyproject.toml" "$SRC/README.md" "$PREFIX/"
# --system-site-packages lets the venv see apt's picamera2; the constraint keeps pip from
# pulling numpy 2 over the system's numpy 1.x that picamera2 was built against.
python3 -m venv --system-site-packages "$PREFIX/.venv"
constraints=$(mktemp)
python3 -c 'import numpy; print(f"numpy=={numpy.__version__}")' >"$constraints" 2>/dev/null || true
"$PREFIX/.venv/bin/pip" install -q --upgrade pip
"$PREFIX/.venv/bin/pip" install -q -c "$constraints" "$PREFIX[pi]"
rm -f "$constraints"
ln -sf "$PREFIX/.venv/bin/edge-grader" /usr/local/bin/edge-grader  # for the README's commands

install -d -m 0750 -o root -g "$USER_NAME" "$ETC" "$ETC/credentials"
[ -f "$ETC/edge-grader.toml" ] || install -m 0640 -o root -g "$USER_NAME" "$SRC/config/edge-grader.toml" "$ETC/edge-grader.toml"
for cred in cloud-api-key mqtt-password local-api-key technician-key; do
  [ -f "$ETC/credentials/$cred" ] || install -m 0600 -o root -g root /dev/null "$ETC/credentials/$cred"
done

install -m 0644 "$SRC/systemd/edge-grader.service" /etc/systemd/system/edge-grader.service
systemctl daemon-reload
CREDENTIALS_DIRECTORY="$ETC/credentials" "$PREFIX/.venv/bin/edge-grader" check-config "$ETC/edge-grader.toml"
systemctl enable --now edge-grader.service
systemctl --no-pager status edge-grader.service || true
echo "installed: edit $ETC/edge-grader.toml and the files in $ETC/credentials/, then: systemctl restart edge-grader"
