#!/usr/bin/env bash
# Shared set-up for scripts/test.sh and scripts/demo.sh: system packages for headless Qt,
# a Python >= 3.11 virtual environment in .venv, and the package with its test extras.
# Source it from the repository root.

HEADLESS_QT_PACKAGES=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-cursor0
  libxkbcommon-x11-0 libgl1 libegl1 libdbus-1-3 libfontconfig1 libglib2.0-0)

ensure_system_packages() {
  command -v dpkg >/dev/null 2>&1 || return 0  # not Debian/Ubuntu: nothing we can check
  local missing=()
  for pkg in "${HEADLESS_QT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "Installing system packages for headless Qt: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Missing system packages for headless Qt. Install them with:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
}

find_python() {
  for py in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$py" ] || continue
    if command -v "$py" >/dev/null 2>&1 &&
      "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  echo "napari-hrtem-fft needs Python >= 3.11 (napari 0.9); set PYTHON=/path/to/python3.11" >&2
  return 1
}

ensure_venv() {
  local py
  py=$(find_python) || return 1
  if [ ! -x .venv/bin/python ]; then
    echo "Creating the virtual environment .venv with $py"
    "$py" -m venv .venv
  fi
  # pip is quiet (-qq); say what it is doing, since the first install takes minutes.
  echo "Installing napari-hrtem-fft and its dependencies into .venv (first run: a few minutes)..."
  .venv/bin/python -m pip install -qq --upgrade pip
  .venv/bin/python -m pip install -qq -e ".[testing]"
  echo "Environment ready."
}
