#!/usr/bin/env python
"""Command-line shell of :mod:`fnf_basicsr.tools.profile_training`; ``--help`` describes the command."""
from fnf_basicsr.tools.profile_training import main

if __name__ == '__main__':
    main()
