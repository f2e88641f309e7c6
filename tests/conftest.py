import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TESTS_DIR = Path(__file__).resolve().parent
PLUGINS_DIR = TESTS_DIR / 'plugins'
REPO_DIR = TESTS_DIR.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_python(args, cwd, extra_env=None, timeout=300):
    """Run ``python ARGS`` in ``cwd`` with the test plugins importable; fail with its output."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(PLUGINS_DIR), env.get('PYTHONPATH')]))
    env.setdefault('OMP_NUM_THREADS', '1')
    env.update(extra_env or {})
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'python {" ".join(map(str, args))} exited {proc.returncode}\n'
                    f'--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}')
    return proc


def write_yaml(path, content):
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path
