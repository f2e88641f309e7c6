#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.make_denoise_example`; ``--help`` describes the command."""
from fnf_basicsr.tools.make_denoise_example import main

if __name__ == '__main__':
    main()
