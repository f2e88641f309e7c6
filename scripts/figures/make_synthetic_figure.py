#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.make_synthetic_figure`; ``--help`` describes the command."""
from fnf_basicsr.tools.make_synthetic_figure import main

if __name__ == '__main__':
    main()
