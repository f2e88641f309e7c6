#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.freeze_testset`; ``--help`` describes the command."""
from fnf_basicsr.tools.freeze_testset import main

if __name__ == '__main__':
    main()
