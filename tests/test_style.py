"""The code is clean under the project's ruff configuration (pyproject.toml: 120 columns, pycodestyle, pyflakes)."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    pytest.importorskip('ruff', reason='ruff comes with the dev install: pip install -e ".[dev]"')
    proc = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', 'fnf_basicsr', 'scripts', 'tests'],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
