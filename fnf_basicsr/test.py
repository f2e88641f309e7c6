"""`python -m fnf_basicsr.test -opt FILE`: BasicSR's test pipeline with our components (torchrun-friendly)."""
import sys

from fnf_basicsr.cli import run_pipeline


def main(argv=None):
    run_pipeline('test', sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    main()
