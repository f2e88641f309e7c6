"""Several processes (distributed ranks) asking for one synthetic split at once: it is rendered once.

Each rank runs in its own process, as under torchrun, and logs every scene it renders; the counts
come from that log, never from timing.
"""
import hashlib
import os
import signal
import subprocess
import sys

import pytest

from fnf_basicsr.data.faid import list_faid_names
from fnf_basicsr.data.synthetic import ensure_synthetic_dataset, generate_split, splits
from fnf_basicsr.utils.files import FAULT_ENV

pytestmark = pytest.mark.skipif(sys.platform == 'win32', reason='the ranks wait on a POSIX flock')

SPLIT, NUM_SCENES, SIZE = 'val', 3, 16
FOLDER = f'{SPLIT}_{NUM_SCENES}x{SIZE}'

# One rank: announce that it reaches the lock, and log each scene it renders. The rank that renders
# holds its first scene back until every rank has reached the lock, so the others are waiting on
# it (a broken lock would let them render too) rather than arriving after the folder exists.
RANK = '''
import contextlib, os, sys, time
from pathlib import Path
from fnf_basicsr.data.synthetic import ensure_synthetic_dataset, splits

root, sync, ranks = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
real_lock, real_render = splits._exclusive_lock, splits.render_scene


def wait_for_all(prefix):
    deadline = time.monotonic() + 120
    while len(list(sync.glob(prefix + '*'))) < ranks:
        if time.monotonic() > deadline:
            raise SystemExit(f'timed out waiting for {ranks} ranks to reach {prefix!r}')
        time.sleep(0.01)


@contextlib.contextmanager
def announced_lock(folder):
    (sync / f'waiting_{os.getpid()}').touch()
    with real_lock(folder):
        yield


def logged_render(seed, size):
    wait_for_all('waiting_')
    with open(sync / 'renders.log', 'a') as log:
        log.write(f'{os.getpid()} {seed}\\n')
    return real_render(seed, size)


splits._exclusive_lock, splits.render_scene = announced_lock, logged_render
(sync / f'started_{os.getpid()}').touch()
wait_for_all('started_')
print(ensure_synthetic_dataset(root, 'val', 3, size=16, workers=1, progress=False))
'''


def _start_ranks(root, sync, ranks, kill_at=None):
    sync.mkdir(exist_ok=True)
    for stale in [*sync.glob('started_*'), *sync.glob('waiting_*')]:  # announced in an earlier round
        stale.unlink()
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    if kill_at:
        env[FAULT_ENV] = kill_at
    return [subprocess.Popen([sys.executable, '-c', RANK, str(root), str(sync), str(ranks)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(ranks)]


def _finish(procs):
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append((proc.returncode, out.strip(), err))
    return results


def _renders(sync):
    """``(pid, seed)`` of every scene rendered, in order."""
    log = sync / 'renders.log'
    lines = log.read_text().split('\n')[:-1] if log.exists() else []
    return [tuple(int(v) for v in line.split()) for line in lines]


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp('reference') / FOLDER
    generate_split(folder, SPLIT, NUM_SCENES, size=SIZE, workers=1, progress=False)
    return _digests(folder)


def test_three_ranks_render_the_split_once_and_all_read_it(tmp_path, reference):
    root, sync = tmp_path / 'data', tmp_path / 'sync'
    results = _finish(_start_ranks(root, sync, 3))
    assert [code for code, _, _ in results] == [0, 0, 0], [err[-2000:] for _, _, err in results]
    assert {out for _, out, _ in results} == {str(root / FOLDER)}
    renders = _renders(sync)
    assert sorted(seed for _, seed in renders) == [1_000_000, 1_000_001, 1_000_002]  # each scene once
    assert len({pid for pid, _ in renders}) == 1  # all by one rank
    assert sorted(os.listdir(root)) == [FOLDER]
    assert _digests(root / FOLDER) == reference


def test_a_killed_renderer_is_resumed_by_one_rank_with_only_the_missing_scenes(tmp_path, reference):
    root, sync = tmp_path / 'data', tmp_path / 'sync'
    [(code, _, err)] = _finish(_start_ranks(root, sync, 1, kill_at='synthetic_scene:1'))
    assert code == -signal.SIGKILL, err[-2000:]
    assert not (root / FOLDER).exists() and (root / f'.{FOLDER}.partial').is_dir()
    assert [seed for _, seed in _renders(sync)] == [1_000_000]

    results = _finish(_start_ranks(root, sync, 2))
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    resumed = _renders(sync)[1:]
    assert sorted(seed for _, seed in resumed) == [1_000_001, 1_000_002]
    assert len({pid for pid, _ in resumed}) == 1
    assert sorted(os.listdir(root)) == [FOLDER]
    assert _digests(root / FOLDER) == reference


def test_a_renderer_killed_before_the_rename_leaves_a_split_used_without_rendering(tmp_path, monkeypatch,
                                                                                   reference):
    root, sync = tmp_path / 'data', tmp_path / 'sync'
    [(code, _, err)] = _finish(_start_ranks(root, sync, 1, kill_at='synthetic_split_rendered:1'))
    assert code == -signal.SIGKILL, err[-2000:]
    assert not (root / FOLDER).exists() and len(_renders(sync)) == NUM_SCENES

    def must_not_render(*args, **kwargs):
        raise AssertionError('the partial folder is complete; nothing should be rendered')
    monkeypatch.setattr(splits, 'render_scene', must_not_render)
    folder = ensure_synthetic_dataset(root, SPLIT, NUM_SCENES, size=SIZE, workers=1, progress=False)
    assert folder == str(root / FOLDER) and len(list_faid_names(folder)) == NUM_SCENES
    assert sorted(os.listdir(root)) == [FOLDER]
    assert _digests(root / FOLDER) == reference
