"""Where samples come from: scene sources and stored test sets behind one interface, read alike by the dataset
(``frozen_root``, so ``basicsr test``) and ``fnf-benchmark``; a new stored format registered once works in both."""
import csv

import numpy as np
import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401
from basicsr.archs import build_network
from fnf_basicsr import benchmark
from fnf_basicsr.data import sample_sources
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.frozen_writer import freeze, freeze_request
from fnf_basicsr.data.lmdb_store import create_lmdb, crop_key
from fnf_basicsr.data.sample_sources import (FolderScenes, FrozenSamples, LmdbScenes, SceneSource, StoredTestSet,
                                             open_scene_source, open_stored_test_set, register_test_set_format)
from fnf_basicsr.data.synthetic import generate_split

@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('sources') / 'scenes'
    generate_split(root, 'test', num_scenes=2, size=96, workers=1, progress=False)
    return root


def test_scene_sources_share_one_interface(scenes, tmp_path):
    folder = open_scene_source(scenes)
    create_lmdb(scenes, tmp_path / 'crops.lmdb', crop_size=64, stride=32, progress=False)
    lmdb = open_scene_source(tmp_path / 'crops.lmdb', {'type': 'lmdb'})
    assert isinstance(folder, FolderScenes) and isinstance(lmdb, LmdbScenes)
    assert isinstance(folder, SceneSource) and isinstance(lmdb, SceneSource)
    whole = folder.load(folder.keys[0])
    crop = lmdb.load(crop_key(folder.keys[0], 0, 0))
    assert np.array_equal(crop.ambient, whole.ambient[:64, :64]) and np.array_equal(crop.color_matrix,
                                                                                     whole.color_matrix)
    with pytest.raises(ValueError, match="io_backend.type must be one of"):
        open_scene_source(scenes, {'type': 'http'})


def test_frozen_sets_are_stored_sets_read_alike_by_dataset_and_benchmark(scenes, tmp_path):
    freeze(*freeze_request(output=str(tmp_path / 'frozen'), dataroot=str(scenes), crop_size=64, subset='all',
                           dimming_factors=[50]), progress=False)
    stored = open_stored_test_set(tmp_path / 'frozen')
    assert isinstance(stored, FrozenSamples) and isinstance(stored, StoredTestSet)
    dataset = FlashNoFlashDataset({'name': 'f', 'phase': 'test', 'frozen_root': str(tmp_path / 'frozen')})
    scored = benchmark.open_test_set(tmp_path / 'frozen')
    for index in range(len(stored)):
        a, b = dataset[index], scored.sample(index, 'flash_noflash')
        assert all(torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))


class FolderOfTensors:
    """A minimal stored format of a user's: ``samples.pt`` holding a list of ready samples."""
    kind = 'tensors'

    def __init__(self, root):
        self.root = root
        self.samples = torch.load(root / 'samples.pt', weights_only=False)
        self.keys = [sample['key'] for sample in self.samples]

    def __len__(self):
        return len(self.samples)

    def item(self, index, input_mode):
        return dict(self.samples[index])

    def recorded_options(self):
        return None

    def identity(self):
        return {'kind': self.kind, 'keys': self.keys}


def test_a_registered_stored_format_is_read_by_the_dataset_and_scored_by_fnf_benchmark(scenes, tmp_path, monkeypatch):
    monkeypatch.setattr(sample_sources, '_TEST_SET_FORMATS', list(sample_sources._TEST_SET_FORMATS))  # undone after
    live = FlashNoFlashDataset({'name': 'x', 'phase': 'test', 'dataroot': str(scenes), 'crop_size': 64,
                                'dimming_factors': [50, 12.5]})
    (tmp_path / 'mine').mkdir()
    torch.save([live[i] for i in range(len(live))], tmp_path / 'mine' / 'samples.pt')
    register_test_set_format('tensors', lambda root: (root / 'samples.pt').is_file(), FolderOfTensors)
    stored = open_stored_test_set(tmp_path / 'mine')
    assert isinstance(stored, FolderOfTensors) and isinstance(stored, StoredTestSet)
    read = FlashNoFlashDataset({'name': 'mine', 'phase': 'test', 'frozen_root': str(tmp_path / 'mine')})
    assert len(read) == 4 and torch.equal(read[3]['lq'], live[3]['lq'])
    network = {'type': 'DirectUNet', 'in_channels': 12, 'width': 0.0625}
    folder = tmp_path / 'experiments' / 'tiny'
    (folder / 'models').mkdir(parents=True)
    (folder / 'tiny.yml').write_text(yaml.safe_dump({'name': 'tiny', 'network_g': network}))
    torch.manual_seed(0)
    torch.save({'params': build_network(network).state_dict()}, folder / 'models' / 'net_g_latest.pth')
    benchmark.main([f'tiny={folder / "models" / "net_g_latest.pth"}', '--test-set', str(tmp_path / 'mine'),
                    '--out', str(tmp_path / 'report'), '--quiet', '--strips', '0'])
    with open(tmp_path / 'report' / 'table.csv') as handle:
        rows = list(csv.DictReader(handle))
    assert {float(r['dimming']) for r in rows} == {50.0, 12.5} and all(int(r['images']) == 2 for r in rows)
