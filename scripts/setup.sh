#!/usr/bin/env bash
# Installs what micforge needs, idempotently: the Arm GNU toolchain, CMake and
# QEMU from Debian (for firmware checks), and the Python package with its
# dependencies. Re-running it when everything is present takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v arm-none-eabi-gcc >/dev/null || need_apt+=(gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm)
command -v gcc >/dev/null || need_apt+=(gcc)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp=.cache/setup.stamp
want="$(sha256sum pyproject.toml | cut -c1-16) $(python3 -c 'import sys; print(sys.version_info[:2])')"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! python3 -c "import generator.cli, tensorflow, tflite_micro, cmsisdsp, SCons" 2>/dev/null \
    || ! python3 -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ('tf_keras', 'tensorflow_model_optimization', 'ai_edge_litert')))"; then
  echo "setup: pip install -e .[test]"
  python3 -m pip install -q --disable-pip-version-check -e '.[test]'
  mkdir -p .cache && echo "$want" > "$stamp"
fi
