#!/usr/bin/env bash
# Build the wheel as a package index would ship it, install it into a clean virtual
# environment (nothing of this checkout on the path) and check there that napari would
# find the plugin: `npe2 validate`, the manifest inside the wheel, the console script.
# The clean environment gets npe2 and the wheel only (no napari, no Qt): the manifest,
# the entry point and the command line's --version need nothing more, and it stays fast.
# Usage: bash scripts/check_wheel.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "check_wheel: building the wheel"
# From a copy, so that the build leaves no build/ or *.egg-info in the checkout.
mkdir "$work/tree"
tar --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' -cf - . |
  tar -xf - -C "$work/tree"
"$PY" -m pip wheel -q --no-deps --wheel-dir "$work/dist" "$work/tree"
wheel=$(ls "$work"/dist/napari_hrtem_fft-*.whl)
"$PY" - "$wheel" <<'PYEOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["napari_hrtem_fft/napari.yaml", "napari_hrtem_fft/cli/__init__.py"]
missing = [n for n in need if n not in names]
licenses = [n for n in names if n.endswith("/licenses/LICENSE") or n.endswith("/LICENSE")]
assert not missing, f"wheel lacks {missing}"
assert licenses, "wheel lacks the LICENSE file"
PYEOF
echo "check_wheel: installing $(basename "$wheel") into a clean venv"
"$PY" -m venv "$work/venv"
(cd "$work" && venv/bin/python -m pip install -q --upgrade pip npe2 && \
  venv/bin/python -m pip install -q --no-deps "$wheel")
(cd "$work" && venv/bin/npe2 validate napari-hrtem-fft)
(cd "$work" && venv/bin/napari-hrtem-fft --version)
echo "check_wheel: ok"
