#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.create_lmdb`; ``--help`` describes the command."""
from fnf_basicsr.tools.create_lmdb import main

if __name__ == '__main__':
    main()
