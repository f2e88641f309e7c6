#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.tune_references`; ``--help`` describes the command."""
from fnf_basicsr.tools.tune_references import main

if __name__ == '__main__':
    main()
