"""fnf-basicsr: flash/no-flash low-light denoising (Xia et al., CVPR 2021) as a BasicSR plugin.

Importing this package applies our compatibility fixes to basicsr and registers every network,
dataset, loss and model of ours with BasicSR's registries.
"""
from . import compat

compat.apply()

from . import archs, data, losses, models  # noqa: E402,F401  (registration side effects)

__version__ = '0.1.0'
