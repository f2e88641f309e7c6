#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.generate_synthetic`; ``--help`` describes the command."""
from fnf_basicsr.tools.generate_synthetic import main

if __name__ == '__main__':
    main()
