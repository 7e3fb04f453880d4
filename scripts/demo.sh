#!/usr/bin/env bash
# Open napari with the synthetic Pd core-shell sample (or the micrograph FILE given), the picker,
# maps and statistics docks opened from the Plugins menu and a finished analysis.
# Without a display it runs under Xvfb and leaves a 1920x1080 screenshot in demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
ensure_system_packages
ensure_venv
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/python scripts/demo.py "$@"
fi
echo "No display: running the demo under Xvfb; the screenshot goes to demo-output/."
exec xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/demo.py --headless "$@"
