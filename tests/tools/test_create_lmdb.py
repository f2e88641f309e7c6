"""The create_lmdb command (fnf_basicsr.tools.create_lmdb; shell: scripts/data_preparation/create_lmdb.py): its help,
the output's parents, one-line refusals of bad numbers, of an output inside or around the input, of an unusable
colour matrix. The LMDB layout itself: tests/data/test_lmdb_store.py."""
import numpy as np
import pytest
from conftest import LMDB_SCENE_SHAPE

import fnf_basicsr  # noqa: F401
from fnf_basicsr.data import faid
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.tools import create_lmdb as create_lmdb_command

SHAPE = LMDB_SCENE_SHAPE
LMDB_OPTIONS = {'phase': 'val', 'io_backend': {'type': 'lmdb'}, 'crop_size': 32, 'margin': 4, 'dimming_factors': [20]}


def read_every_sample(lmdb_path):
    dataset = FlashNoFlashDataset({**LMDB_OPTIONS, 'dataroot': str(lmdb_path)})
    return [dataset[index]['key'] for index in range(len(dataset))]


def test_command_line_help_documents_every_option():
    help_text = create_lmdb_command.build_parser().format_help()
    for option in ('--input', '--output', '--split', '--crop-size', '--stride', '--num-val', '--val-names',
                   '--max-images', '--encoding', '--overwrite', '--quiet'):
        assert option in help_text
    assert all(action.help for action in create_lmdb_command.build_parser()._actions)


def test_missing_output_parents_are_created(faid_folder, tmp_path):
    lmdb_path = tmp_path / 'datasets' / 'FAID_lmdb' / 'train.lmdb'  # the README's command in a fresh folder
    create_lmdb_command.main(['--input', str(faid_folder), '--output', str(lmdb_path), '--crop-size', '64', '--quiet'])
    assert len(read_every_sample(lmdb_path)) == 2 * 2 * 2  # rows 0, 6; columns 0, 26


@pytest.mark.parametrize('argv, message', [
    (['--crop-size', '0'], '--crop-size must be an integer >= 1, got 0'),
    (['--stride', '0'], '--stride must be an integer >= 1, got 0'),
    (['--stride', '-5'], '--stride must be an integer >= 1, got -5'),
    (['--num-val', '-1'], '--num-val must be an integer >= 0, got -1'),
    (['--max-images', '0'], '--max-images must be an integer >= 1, got 0')])
def test_invalid_numbers_are_one_line_errors(faid_folder, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        create_lmdb_command.main(['--input', str(faid_folder), '--output', str(tmp_path / 'x.lmdb'), '--quiet', *argv])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == f'create_lmdb.py: error: {message}'
    assert not (tmp_path / 'x.lmdb').exists()


def _faid_copy(faid_folder, folder):
    folder.mkdir(parents=True)
    for path in faid_folder.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


@pytest.mark.parametrize('layout', ['same', 'inside', 'containing', 'link'])
def test_output_that_is_inside_or_holds_the_input_is_refused(faid_folder, tmp_path, capsys, layout):
    source = _faid_copy(faid_folder, tmp_path / 'faid.lmdb' / 'scenes' if layout == 'containing' else
                        tmp_path / 'faid.lmdb')
    (tmp_path / 'link.lmdb').symlink_to(source)
    output = {'same': source, 'inside': source / 'train.lmdb', 'containing': tmp_path / 'faid.lmdb',
              'link': tmp_path / 'link.lmdb'}[layout]
    before = sorted(p.name for p in source.iterdir())
    with pytest.raises(SystemExit) as exited:
        create_lmdb_command.main(['--input', str(source), '--output', str(output), '--overwrite', '--crop-size',
                                  '64', '--quiet'])
    assert exited.value.code == 2 and 'the input' in capsys.readouterr().err
    assert sorted(p.name for p in source.iterdir()) == before


@pytest.mark.parametrize('matrix, problem', [('-1 0 0 0 -1 0 0 0 -1', 'negative determinant'),
                                             ('1 0 0 0 -1 0 0 0 -1', 'maps white light'),
                                             ('0 0 0 0 0 0 0 0 0', 'singular'), ('nan 0 0 0 1 0 0 0 1', 'non-finite')])
def test_a_pair_with_an_unusable_color_matrix_is_refused_naming_the_file(tmp_path, capsys, matrix, problem):
    rng = np.random.default_rng(0)
    folder = tmp_path / 'faid'
    folder.mkdir()
    for suffix in ('ambient', 'flash'):
        (folder / f'Scene_{suffix}.png').write_bytes(faid.encode_png16(
            rng.integers(0, 65536, (70, 90, 3), dtype=np.uint16), {'Comment': matrix, 'Description': '21'}))
    with pytest.raises(SystemExit) as exited:
        create_lmdb_command.main(['--input', str(folder), '--output', str(tmp_path / 'x.lmdb'), '--quiet'])
    line = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and f'{folder / "Scene_ambient.png"}: xyz_to_camera' in line and problem in line
    assert not (tmp_path / 'x.lmdb').exists()
