"""The generate_synthetic command (fnf_basicsr.tools.generate_synthetic): writes a split, refuses to overwrite it
without --overwrite, refuses bad numbers in one line. The splits themselves: tests/data/synthetic/test_splits.py."""
import pytest

from fnf_basicsr.data.faid import list_faid_names
from fnf_basicsr.tools import generate_synthetic


def test_generate_script_writes_scenes_and_refuses_to_overwrite(tmp_path, capsys):
    argv = ['--root', str(tmp_path), '--split', 'val', '--num', '2', '--size', '16', '--workers', '1']
    generate_synthetic.main(argv)
    assert 'wrote 2 scenes' in capsys.readouterr().out
    assert list_faid_names(tmp_path) == ['Synth_val_000000', 'Synth_val_000001']
    with pytest.raises(SystemExit) as exited:
        generate_synthetic.main(argv)
    assert exited.value.code == 2 and '--overwrite' in capsys.readouterr().err
    generate_synthetic.main(argv + ['--overwrite'])


@pytest.mark.parametrize('argv, message', [(['--num', '0'], 'num_scenes must be an integer >= 1, got 0'),
                                           (['--size', '4'], 'size must be an integer >= 8, got 4'),
                                           (['--workers', '0'], 'workers must be an integer >= 1, got 0')])
def test_script_refuses_bad_numbers_in_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        generate_synthetic.main(['--root', str(tmp_path / 'out'), *argv])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == f'generate_synthetic.py: error: {message}'
