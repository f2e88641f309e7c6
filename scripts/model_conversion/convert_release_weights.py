#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.convert_release_weights`; ``--help`` describes the command."""
from fnf_basicsr.tools.convert_release_weights import main

if __name__ == '__main__':
    main()
