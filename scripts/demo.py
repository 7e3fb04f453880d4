"""Demo: the sample particle, both widgets and a finished analysis in napari.

Run through ``bash scripts/demo.sh``.  With ``--headless`` the window is saved as
``demo-output/napari-hrtem-fft-demo.png`` and napari closes again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import napari

from napari_hrtem_fft._widgets.demo import build_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--headless", action="store_true", help="save a screenshot and exit")
    parser.add_argument("--out", default="demo-output", help="folder for the screenshot")
    args = parser.parse_args()

    viewer = napari.Viewer(title="napari-hrtem-fft demo")
    viewer.window.resize(1600, 1000)
    build_demo(viewer)
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
