#!/usr/bin/env bash
# Set up everything the booth and its tests need on Debian / Raspberry Pi OS, idempotently:
# Debian packages (mosquitto, systemd's analyzer, curl, openssl, python venv), the .venv with the package
# and its dev tools, and the demo photos. Run by tools/demo.sh and tools/test.sh.
# WITH_BROWSER=1 (tools/test.sh sets it) adds Chromium and its driver for the screen's tests; a booth
# never needs them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || apt_missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || apt_missing+=(mosquitto-clients)
command -v systemd-analyze >/dev/null || apt_missing+=(systemd)
command -v curl >/dev/null || apt_missing+=(curl)
command -v openssl >/dev/null || apt_missing+=(openssl)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_missing+=(python3-venv)
if [ "${WITH_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null || apt_missing+=(chromium)
  command -v chromedriver >/dev/null || apt_missing+=(chromium-driver)
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${apt_missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

if [ ! -d "$ROOT/config/demo-images/front" ]; then
  "$VENV/bin/python" -m edge.synth.demo_images "$ROOT/config/demo-images"
fi
