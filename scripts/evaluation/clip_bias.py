#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.clip_bias`; ``--help`` describes the command."""
from fnf_basicsr.tools.clip_bias import main

if __name__ == '__main__':
    main()
