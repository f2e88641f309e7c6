#!/usr/bin/env python
"""Command-line shell of :func:`fnf_basicsr.inference.release.convert_main`; ``--help`` describes the command."""
from fnf_basicsr.inference.release import convert_main

if __name__ == '__main__':
    convert_main()
