"""Convert the authors' released DeepFnF weights to a BasicSR checkpoint (see the README).

    python scripts/model_conversion/convert_release_weights.py wts/model.npz weights/deepfnf_release.pth

The work is done by :mod:`fnf_basicsr.inference.release`; this file is only its command line.
"""
import fnf_basicsr  # noqa: F401  (first: registers DeepFnF with BasicSR)
from fnf_basicsr.inference.release import convert_main

if __name__ == '__main__':
    convert_main()
