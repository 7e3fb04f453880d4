#!/usr/bin/env bash
# Run the whole test suite: set up (system packages, .venv, package), validate the
# napari manifest, check the wheel in a clean venv (scripts/check_wheel.sh), then pytest
# under a virtual X server. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
ensure_system_packages
ensure_venv
.venv/bin/npe2 validate napari-hrtem-fft
bash scripts/check_wheel.sh .venv/bin/python
.venv/bin/ruff check src tests benchmarks scripts
exec xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m pytest "$@"
