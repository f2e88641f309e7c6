import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

TESTS_DIR = Path(__file__).resolve().parent
PLUGINS_DIR = TESTS_DIR / 'plugins'
REPO_DIR = TESTS_DIR.parent
SCRIPTS_DIR = REPO_DIR / 'scripts'


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


@pytest.fixture(scope='session', autouse=True)
def one_thread():
    """Run the suite's tiny tensors on one thread: their small ops gain nothing from more, and on
    a busy 2-core machine every OpenMP barrier can wait a scheduler time slice (measured: the
    filter, arch and loss tests took 53 s with 2 threads, 9 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_within_summation_error(got, exact, magnitude, terms, dtype=torch.float32, name=''):
    """``got`` (computed in ``dtype``) equals ``exact`` (float64) within the rounding that summing ``terms``
    products can add, whatever order a CPU's kernels sum them in.

    ``magnitude`` holds, per element, the sum of the absolute values of those products (the same multilinear
    computation in float64 on absolute inputs); recursive summation of ``terms`` products errs by at most
    ``terms * eps * magnitude`` (Higham, Accuracy and Stability of Numerical Algorithms, eq. 3.5), a bound
    that holds on AVX2 and AVX-512 kernels alike, unlike a tolerance read off one CPU's result.
    """
    bound = terms * torch.finfo(dtype).eps * magnitude.double() + torch.finfo(dtype).tiny
    error = (got.double() - exact).abs()
    worst = (error / bound).max().item()
    assert worst <= 1, f'{name}: error {error.max().item():.3g} exceeds the float32 summation bound ({worst:.2f}x)'


@pytest.fixture
def basicsr_log(caplog):
    """``caplog`` listening on BasicSR's root logger, which stops propagating once BasicSR has set it up."""
    import logging
    logger = logging.getLogger('basicsr')
    logger.addHandler(caplog.handler)
    with caplog.at_level('INFO', logger='basicsr'):
        yield caplog
    logger.removeHandler(caplog.handler)
