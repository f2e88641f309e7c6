"""Writing frozen test sets (fnf_basicsr.data.frozen_writer): freezing from a test option file, the set matching it
when scored, safe overwrites, crafted and damaged manifests, faults. The command: tests/tools/test_freeze_testset.py."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import FREEZE_CROP, tiny_test_option_file

import fnf_basicsr  # noqa: F401  (registers the dataset)
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.frozen_set import FROZEN_MANIFEST, read_frozen_manifest
from fnf_basicsr.data.frozen_writer import freeze, freeze_request
from fnf_basicsr.errors import ConfigError, DataError, OutputError, OutputExistsError

REPO = Path(__file__).resolve().parents[2]
CROP = FREEZE_CROP


@pytest.fixture(scope='module')
def scenes(freeze_scenes):
    return freeze_scenes


def test_freezing_from_a_test_option_file_writes_its_frozen_root_and_scores_the_same_samples(scenes, tmp_path):
    path, dataset_opt = tiny_test_option_file(scenes, tmp_path)
    request, output = freeze_request(str(path))
    assert output == tmp_path / 'frozen'
    assert freeze(request, output, progress=False) == (6, 0)
    options = read_frozen_manifest(output)['options']
    assert options['scale_pivot'] == 'image_origin' and options['dimming_factors'] == [50.0, 25.0]
    frozen = FlashNoFlashDataset({**dataset_opt, 'phase': 'test'})  # frozen_root and dataroot: checked, read frozen
    live = FlashNoFlashDataset({**{k: v for k, v in dataset_opt.items() if k != 'frozen_root'}, 'phase': 'test'})
    assert frozen.frozen is not None and len(frozen) == len(live) == 6
    for index in (0, 5):
        np.testing.assert_array_equal(frozen[index]['lq'].numpy(), live[index]['lq'].numpy())
    # A flag overrides one option of the file.
    assert freeze_request(str(path), seed=3)[0]['seed'] == 3


def test_a_set_frozen_with_other_options_is_refused_when_scored(scenes, tmp_path):
    path, dataset_opt = tiny_test_option_file(scenes, tmp_path)
    freeze(*freeze_request(str(path), scale_pivot='crop_center'), progress=False)
    with pytest.raises(ConfigError, match=r"scale_pivot: frozen 'crop_center', options 'image_origin'.*"
                                          r"freeze_testset.py"):
        FlashNoFlashDataset({**dataset_opt, 'phase': 'test'})
    # Without a dataroot the file describes no degradation: the manifest rules, as before.
    FlashNoFlashDataset({'phase': 'test', 'frozen_root': dataset_opt['frozen_root']})


def test_defaults_without_an_option_file_are_the_option_files_conventions(scenes, tmp_path):
    request, output = freeze_request(dataroot=str(scenes), output=str(tmp_path / 'set'), crop_size=CROP, margin=8,
                                     dimming_factors=[50], max_images=1)
    freeze(request, output, progress=False)
    assert read_frozen_manifest(output)['options']['scale_pivot'] == 'image_origin'
    for path in (REPO / 'options').rglob('*.yml'):
        for dataset in yaml.safe_load(path.read_text())['datasets'].values():
            assert (dataset.get('misalignment') or {}).get('scale_pivot', 'image_origin') == 'image_origin', path


def test_overwrite_replaces_only_files_the_writer_wrote(scenes, tmp_path):
    output = tmp_path / 'set'
    request, _ = freeze_request(dataroot=str(scenes), output=str(output), crop_size=CROP, margin=8,
                                dimming_factors=[50], max_images=2)
    freeze(request, output, progress=False)
    (output / 'notes.txt').write_text('mine')
    with pytest.raises(OutputExistsError, match='other options'):
        freeze({**request, 'seed': 1}, output, progress=False)
    assert freeze({**request, 'seed': 1}, output, overwrite=True, progress=False) == (2, 0)
    assert (output / 'notes.txt').read_text() == 'mine'
    assert len(list(output.glob('*.npz'))) == 2 and read_frozen_manifest(output)['options']['seed'] == 1


def test_a_folder_the_writer_did_not_write_is_never_emptied(scenes, tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'thesis.tex').write_text('years of work')
    request, _ = freeze_request(dataroot=str(scenes), output=str(other), crop_size=CROP, margin=8, max_images=1)
    with pytest.raises(OutputExistsError, match='not a frozen set.*not even with --overwrite'):
        freeze(request, other, overwrite=True, progress=False)
    assert (other / 'thesis.tex').read_text() == 'years of work'
    before = sorted(p.name for p in scenes.iterdir())
    for output in (scenes, scenes.parent):  # the input itself, or a folder holding it
        with pytest.raises(ConfigError, match='(is|contains) the input'):
            freeze(request, output, overwrite=True, progress=False)
    assert sorted(p.name for p in scenes.iterdir()) == before


def _crafted(output, entry_file, tmp_path):
    """The manifest of the set in ``output`` made to list ``entry_file`` and to differ in options."""
    manifest = json.loads((output / FROZEN_MANIFEST).read_text())
    manifest['samples'][0]['file'] = entry_file
    manifest['options']['seed'] = 99
    (output / FROZEN_MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize('entry', ['../victim.txt', 'ABSOLUTE', 'link.npz'], ids=['dotdot', 'absolute', 'symlink'])
def test_overwrite_never_deletes_what_a_crafted_manifest_names_outside_the_set(scenes, tmp_path, entry):
    output, victim = tmp_path / 'set', tmp_path / 'victim.txt'
    request, _ = freeze_request(dataroot=str(scenes), output=str(output), crop_size=CROP, margin=8,
                                dimming_factors=[50], max_images=2)
    freeze(request, output, progress=False)
    victim.write_text('not yours')
    if entry == 'link.npz':
        (output / entry).symlink_to(victim)
    _crafted(output, str(victim) if entry == 'ABSOLUTE' else entry, tmp_path)
    before = sorted(p.name for p in output.iterdir())
    with pytest.raises(DataError, match='refusing to delete|not a .npz file of the set'):
        freeze(request, output, overwrite=True, progress=False)
    assert victim.read_text() == 'not yours' and sorted(p.name for p in output.iterdir()) == before


def test_a_crafted_manifest_is_refused_when_read(scenes, tmp_path):
    output = tmp_path / 'set'
    request, _ = freeze_request(dataroot=str(scenes), output=str(output), crop_size=CROP, margin=8,
                                dimming_factors=[50], max_images=1)
    freeze(request, output, progress=False)
    _crafted(output, '/etc/hostname', tmp_path)
    with pytest.raises(DataError, match="lists the sample file '/etc/hostname'"):
        FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(output)})


def test_unusable_outputs_and_damaged_manifests_are_named_before_any_work(scenes, tmp_path):
    (tmp_path / 'file').write_text('x')
    request, _ = freeze_request(dataroot=str(scenes), output=str(tmp_path), crop_size=CROP, margin=8, max_images=1)
    with pytest.raises(OutputError, match='file, not a folder'):
        freeze(request, tmp_path / 'file' / 'set', progress=False)
    (tmp_path / 'broken').mkdir()
    (tmp_path / 'broken' / FROZEN_MANIFEST).write_text('{"format": "fnf-basicsr frozen')
    with pytest.raises(DataError, match=r'broken/manifest.json is not readable JSON.*--overwrite'):
        FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(tmp_path / 'broken')})
    with pytest.raises(ConfigError, match='no dataroot'):
        freeze_request(output=str(tmp_path / 'x'))


def test_an_lmdb_or_a_frozen_set_where_the_other_is_expected_is_named(scenes, tmp_path):
    from fnf_basicsr.data.lmdb_store import create_lmdb
    lmdb_path = tmp_path / 'crops.lmdb'
    create_lmdb(scenes, lmdb_path, crop_size=48, stride=48, progress=False)
    with pytest.raises(DataError, match='is an LMDB of training crops, not a frozen test set'):
        FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(lmdb_path)})
    with pytest.raises(DataError, match='it is an LMDB of crops: read it with io_backend'):
        freeze_request(dataroot=str(lmdb_path), output=str(tmp_path / 'set'))
    request, _ = freeze_request(dataroot=str(scenes), output=str(tmp_path / 'set'), crop_size=CROP, margin=8,
                                max_images=1, dimming_factors=[50])
    freeze(request, tmp_path / 'set', progress=False)
    with pytest.raises(DataError, match='it is a frozen test set: score it with fnf-benchmark'):
        freeze_request(dataroot=str(tmp_path / 'set'), output=str(tmp_path / 'other'))
