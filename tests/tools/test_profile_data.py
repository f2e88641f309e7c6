"""The data-pipeline benchmark (fnf_basicsr.tools.profile_data), at a tiny size: it works in a scratch folder of
its own, removed at the end, and reports samples per second for every backend and input mode."""
from pathlib import Path

from fnf_basicsr.tools import profile_data


def test_profile_data_removes_only_its_own_scratch_folder(tmp_path, capsys):
    """--root used to be replaced whole (rmtree): now the tool works in a folder it creates there."""
    (tmp_path / 'thesis.tex').write_text('years of work')
    profile_data.main(['--root', str(tmp_path), '--num-scenes', '1', '--size', '64', '--crop-size', '32',
                         '--samples', '1'])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['thesis.tex']
    assert 'samples/s' in capsys.readouterr().out


def test_sample_rates_are_per_second_of_the_dataset_it_is_given(tmp_path):
    folder, scenes_per_second = profile_data.time_generation(tmp_path / 'synthetic', 1, 64)
    assert scenes_per_second > 0 and len(list(Path(folder).glob('*_ambient.png'))) == 1
    rate = profile_data.time_samples({'dataroot': str(folder), 'crop_size': 32}, 3)
    assert rate > 0
    assert profile_data.time_samples({'dataroot': str(folder), 'crop_size': 32}, 2, phase='val') > 0
