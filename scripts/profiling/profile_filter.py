#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.profile_filter`; ``--help`` describes the command."""
from fnf_basicsr.tools.profile_filter import main

if __name__ == '__main__':
    main()
