"""Demo: the sample particle (or your micrograph), the docks and a finished analysis.

Run through ``bash scripts/demo.sh [FILE]``.  The file (default: the plugin's sample)
and the docks are opened as a user opens them, through the plugin's reader and the
Plugins menu.  With ``--headless`` the 1920×1080 window is saved as
``demo-output/napari-hrtem-fft-demo.png`` and napari closes again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import napari

from napari_hrtem_fft._widgets.demo import build_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="?", help="micrograph to open (default: the sample)")
    parser.add_argument("--headless", action="store_true", help="save a screenshot and exit")
    parser.add_argument("--out", default="demo-output", help="folder for the screenshot")
    args = parser.parse_args()

    viewer = napari.Viewer(title="napari-hrtem-fft demo")
    viewer.window.resize(1920, 1080)
    build_demo(viewer, path=args.file)
    if args.headless:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "napari-hrtem-fft-demo.png"
        viewer.screenshot(str(path), canvas_only=False, flash=False)
        viewer.close()
        print(f"Screenshot written to {path}")
    else:
        napari.run()


if __name__ == "__main__":
    main()
