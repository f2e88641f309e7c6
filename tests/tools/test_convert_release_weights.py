"""The convert_release_weights command (fnf_basicsr.tools.convert_release_weights): one-line errors for every bad
weights file, nothing written by a failed run, --overwrite. The conversion itself: tests/inference/test_release.py."""
import numpy as np
import pytest
import torch

import fnf_basicsr  # noqa: F401  (first: registers our networks with BasicSR)
# isort: split
from fnf_basicsr.tools import convert_release_weights


def _convert(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        convert_release_weights.main([str(a) for a in argv])
    message = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and '\n' not in message and 'Traceback' not in message
    return message


def test_bad_weights_files_get_one_line_errors(release_model, tmp_path, capsys):
    _, arrays, path = release_model
    out = tmp_path / 'out.pth'

    def variant(name, **changes):
        changed = {**arrays, **changes}
        for key in [k for k, v in changed.items() if v is None]:
            del changed[key]
        target = tmp_path / f'{name}.npz'
        np.savez(target, **changed)
        return target

    assert 'arrays 1 missing (first: k_conv_b)' in _convert(capsys, variant('missing', k_conv_b=None), out)
    assert '1 unexpected (first: extra_w)' in _convert(capsys, variant('extra', extra_w=np.zeros(3, np.float32)), out)
    wrong = _convert(capsys, variant('shape', up2_3_w=np.zeros((3, 3, 8, 9), np.float32)), out)
    assert 'wrong shape' in wrong and 'up2_3_w (3, 3, 8, 9)' in wrong
    nan = arrays['end_1_b'].copy()
    nan[0] = np.nan
    assert 'end_1_b holds NaN' in _convert(capsys, variant('nan', end_1_b=nan), out)
    assert 'dtype int64' in _convert(capsys, variant('int', inp_b=np.zeros(arrays['inp_b'].shape, np.int64)), out)
    truncated = tmp_path / 'truncated.npz'
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert 'not a complete .npz file' in _convert(capsys, truncated, out)
    junk = tmp_path / 'junk.npz'
    junk.write_bytes(b'not a zip file at all')
    assert 'not a complete .npz file' in _convert(capsys, junk, out)
    assert 'does not exist' in _convert(capsys, tmp_path / 'absent.npz', out)
    assert 'must end in .pth' in _convert(capsys, path, tmp_path / 'out.pt')
    assert not out.exists() and not out.with_suffix('.yml').exists()  # nothing written by a failed run


def test_existing_output_needs_overwrite(release_model, tmp_path, capsys):
    _, _, path = release_model
    out = tmp_path / 'release.pth'
    convert_release_weights.main([str(path), str(out)])
    assert 'wrote' in capsys.readouterr().out
    before = torch.load(out, weights_only=True)['params']
    assert 'release.pth already exists; pass --overwrite' in _convert(capsys, path, out)
    out.unlink()  # only the option file left: still refused, the pair is replaced together
    assert 'release.yml already exists' in _convert(capsys, path, out)
    convert_release_weights.main([str(path), str(out), '--overwrite'])
    after = torch.load(out, weights_only=True)['params']
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
