import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
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


# The authors' released test-set layout, written from our own generator (tests of its reader and its scoring).
RELEASE_ALPHAS = (0.01, 0.02, 0.04, 0.08)  # one level each, as data/testset/0..3


def write_release_testset(root, images=2, size=64):
    """A tiny set in the release's layout: <k>/<c>.npz, NHWC arrays with a batch axis."""
    from fnf_basicsr.data.synthetic import render_scene
    from fnf_basicsr.utils.rendering import bradford_adaptation, illuminant_name
    rng = np.random.default_rng(0)
    for level, alpha in enumerate(RELEASE_ALPHAS):
        (root / str(level)).mkdir(parents=True)
        for index in range(images):
            ambient, flash_only, metadata = render_scene(100 + index, size=size)
            warped_ambient, warped_flash = np.roll(ambient, 1, axis=1), np.roll(flash_only, 1, axis=1)
            sig_read, sig_shot = 10 ** -2.6, 10 ** -1.8

            def noisy(clean):
                return clean + rng.normal(size=clean.shape) * np.sqrt(sig_read ** 2 + sig_shot ** 2 * clean)

            arrays = {'alpha': np.float32(alpha), 'ambient': ambient, 'warped_ambient': warped_ambient,
                      'flash_only': flash_only, 'warped_flash_only': warped_flash,
                      'noisy_ambient': noisy(alpha * ambient),
                      'noisy_warped_flash': noisy(2 * warped_flash + alpha * warped_ambient),
                      'sig_read': np.float32(sig_read), 'sig_shot': np.float32(sig_shot),
                      'color_matrix': metadata.xyz_to_camera,
                      'adapt_matrix': bradford_adaptation(illuminant_name(metadata.illuminant))}
            batched = {k: np.asarray(v, np.float32)[None] if np.ndim(v) >= 2 else np.asarray(v, np.float32)
                       for k, v in arrays.items()}
            np.savez(root / str(level) / f'{index}.npz', **batched)
    return root


# Shared by the writer's and the command's tests (tests/data/test_frozen_writer.py, tests/tools/test_freeze_testset.py).
FREEZE_CROP = 48


@pytest.fixture(scope='module')
def freeze_scenes(tmp_path_factory):
    """Three random 80x90 FAID pairs to freeze."""
    from fnf_basicsr.data import faid
    folder = tmp_path_factory.mktemp('faid')
    rng = np.random.default_rng(0)
    metadata = faid.ColorMetadata(np.eye(3), 21)
    for name in ('Scene_a', 'Scene_b', 'Scene_c'):
        faid.write_faid_pair(folder, name, rng.random((80, 90, 3)), rng.random((80, 90, 3)), metadata)
    return folder


def tiny_test_option_file(scenes, tmp_path, **changes):
    """options/test_fnf.yml with its dataset pointed at the tiny scenes (crop 48, two dimming factors)."""
    opt = yaml.safe_load((REPO_DIR / 'options' / 'test_fnf.yml').read_text())
    opt['datasets']['test'].update({'dataroot': str(scenes), 'subset': 'all', 'crop_size': FREEZE_CROP, 'margin': 8,
                                    'dimming_factors': [50, 25], 'frozen_root': str(tmp_path / 'frozen'), **changes})
    path = tmp_path / 'test_tiny.yml'
    path.write_text(yaml.safe_dump(opt))
    return path, opt['datasets']['test']


# Shared by the LMDB layout's and the command's tests (tests/data/test_lmdb_store.py, tests/tools/test_create_lmdb.py).
LMDB_SCENE_SHAPE = (70, 90, 3)  # crops of 48 every 32 px: rows at 0, 22; columns at 0, 32, 42


@pytest.fixture(scope='module')
def faid_folder(tmp_path_factory):
    """Three FAID pairs over the full 16-bit range (one of them a paper test scene), each with its own metadata."""
    from fnf_basicsr.data import faid
    folder = tmp_path_factory.mktemp('faid')
    rng = np.random.default_rng(0)
    for index, name in enumerate(['Scene_a', 'Scene_b', faid.load_test_split()[0]]):
        metadata = faid.ColorMetadata(np.eye(3) * (1 + index) + 0.1, (17, 21, 23)[index])
        # Full 16-bit range, including odd values that an 8-bit or float16 path would lose.
        ambient, flash_only = (rng.integers(0, 65536, LMDB_SCENE_SHAPE, dtype=np.uint16) for _ in range(2))
        faid.write_faid_pair(folder, name, ambient, flash_only, metadata)
    return folder


def tiny_release_options():
    """DeepFnF options with the release's layer structure and conventions at a tiny width (K = 15 as in net.py,
    4 basis elements)."""
    from fnf_basicsr.inference import release
    return dict(width=0.0625, num_basis=4, kernel_size=15, upsample=4, **release.RELEASE_CONVENTIONS)


@pytest.fixture
def release_model(tmp_path):
    """A random tiny DeepFnF of :func:`tiny_release_options`, written as the release's npz: ``(net, arrays, path)``."""
    from fnf_basicsr.archs.deepfnf_arch import DeepFnF
    from fnf_basicsr.inference import release
    torch.manual_seed(0)
    net = DeepFnF(**tiny_release_options()).eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))  # nonzero biases too
    arrays = release.state_dict_to_release(net.state_dict())
    path = tmp_path / 'model.npz'
    np.savez(path, **arrays)
    return net, arrays, path

