"""Frozen test sets' identity (fnf_basicsr.data.frozen_set): what a set records as its options is what the dataset
does with the same options, and the options that tell two sets apart."""
import pytest

from fnf_basicsr.data import dataset_options
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.frozen_set import degradation_options
from fnf_basicsr.data.synthetic import generate_split


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes')
    generate_split(root, 'test', 2, size=16, workers=1, progress=False)  # no image is read: any size serves
    return root


def _recorded_by_the_dataset(dataset):
    """The options a val/test dataset degrades with, in the frozen manifest's names and types."""
    bins = dataset.displacement_bins  # kept as (low, high) pairs
    return {
        'io_backend': dataset.io_backend_opt['type'], 'crop_size': dataset.crop_size, 'margin': dataset.margin,
        'reference': dataset.reference, 'dimming_factors': dataset.dimming_factors,
        'sig_read': dataset.fixed_noise[0], 'sig_shot': dataset.fixed_noise[1], 'seed': dataset.seed,
        'displacement_bins': None if bins is None else [bins[0][0], *(high for _, high in bins)],
        'scale_pivot': dataset.scale_pivot,
        'misalign': dataset.misalign, 'rotation_deg': dataset.motion_options['rotation_deg'],
        'scale_range': list(dataset.motion_options['scale_range']),
        'translation_px': list(dataset.motion_options['translation_px']), 'fov_deg': dataset.fov_deg,
    }


def test_every_default_a_frozen_set_records_is_the_one_the_dataset_uses(scenes):
    options = {'dataroot': str(scenes)}
    recorded = degradation_options(options)
    dataset = FlashNoFlashDataset({**options, 'phase': 'test'})
    expected = _recorded_by_the_dataset(dataset)
    assert {key: recorded[key] for key in expected} == expected
    assert recorded['max_images'] is None and len(dataset.entries) == 2
    assert recorded['subset'] == 'all' and dataset.entries == ['Synth_test_000000', 'Synth_test_000001']


def test_a_changed_dataset_default_is_what_frozen_sets_record(scenes, monkeypatch):
    monkeypatch.setitem(dataset_options.DEFAULTS, 'margin', 20)
    monkeypatch.setitem(dataset_options.DEFAULTS, 'dimming_factors', (40.0,))
    monkeypatch.setitem(dataset_options.NOISE_DEFAULTS, 'sig_read', 0.5)
    monkeypatch.setitem(dataset_options.MISALIGNMENT_DEFAULTS, 'scale_pivot', 'crop_center')
    dataset = FlashNoFlashDataset({'dataroot': str(scenes), 'phase': 'test'})
    recorded = degradation_options({'dataroot': str(scenes)})
    assert (dataset.margin, dataset.dimming_factors, dataset.fixed_noise[0], dataset.scale_pivot) == (
        20, [40.0], 0.5, 'crop_center')
    assert {key: recorded[key] for key in ('margin', 'dimming_factors', 'sig_read', 'scale_pivot')} == {
        'margin': 20, 'dimming_factors': [40.0], 'sig_read': 0.5, 'scale_pivot': 'crop_center'}


def test_options_given_override_the_defaults_in_both(scenes):
    options = {'dataroot': str(scenes), 'crop_size': 64, 'margin': 4, 'reference': 'flash', 'seed': 3,
               'dimming_factors': [20], 'displacement_bins': [0, 2, 4], 'noise': {'sig_read': 0.01, 'sig_shot': 0.02},
               'misalignment': {'enabled': False, 'rotation_deg': 1, 'scale_range': [0.9, 1.1],
                                'translation_px': [0, 1], 'fov_deg': 60, 'scale_pivot': 'crop_center'}}
    recorded = degradation_options(options)
    expected = _recorded_by_the_dataset(FlashNoFlashDataset({**options, 'phase': 'test'}))
    assert {key: recorded[key] for key in expected} == expected


def test_the_simulated_isp_is_part_of_a_sets_identity():
    from fnf_basicsr.data.frozen_set import degradation_options, differing_options
    plain = degradation_options({'crop_size': 64})
    with_isp = degradation_options({'crop_size': 64, 'isp': {'demosaic': True, 'jpeg_quality': [70, 95]}})
    assert differing_options(plain, with_isp) == ['isp']
    older_manifest = {key: value for key, value in plain.items() if key != 'isp'}  # written before isp was recorded
    assert differing_options(older_manifest, plain) == []
