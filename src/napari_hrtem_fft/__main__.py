"""``python -m napari_hrtem_fft``: the command line (see :mod:`napari_hrtem_fft.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
