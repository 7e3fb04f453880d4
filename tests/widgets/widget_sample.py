"""Known answers of the synthetic Pd core-shell sample used by the widget tests."""

import numpy as np

PIXEL_SIZE = 0.02  # nm, the sample's calibration
D_111 = 0.389 / np.sqrt(3)  # nm, Pd {111} in the core (0.2246)
D_002 = 0.389 / 2  # nm, Pd {002} (0.1945)
SHELL_EXPANSION = 0.035
