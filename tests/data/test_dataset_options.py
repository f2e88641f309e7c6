"""The dataset's option schema (fnf_basicsr.data.dataset_options): one-line refusals of a bad choice or an unknown
key (with the nearest key for a typo), and defaults that belong to keys the dataset accepts."""
import pytest

from fnf_basicsr.data.dataset_options import (BASICSR_DATASET_KEYS, DATASET_KEYS, DEFAULTS, DEGRADATIONS,
                                              MISALIGNMENT_DEFAULTS, MISALIGNMENT_KEYS, NOISE_DEFAULTS, NOISE_KEYS,
                                              PAPER_ONLY_KEYS, SCALE_PIVOTS, SUBSETS, SYNTHETIC_KEYS, check_choice,
                                              check_keys)
from fnf_basicsr.errors import ConfigError


def test_a_value_outside_the_choices_is_refused_naming_them():
    check_choice('degradation', 'srgb_awgn', DEGRADATIONS)  # a valid choice passes
    with pytest.raises(ConfigError, match=r"^degradation must be one of \['paper', 'srgb_awgn'\], got 'raw'$"):
        check_choice('degradation', 'raw', DEGRADATIONS)


def test_unknown_keys_are_refused_with_the_nearest_key_for_each_typo():
    check_keys('datasets:train', {'crop_size': 64, 'seed': 1}, DATASET_KEYS)  # known keys pass
    with pytest.raises(ConfigError) as refused:
        check_keys('datasets:train', {'crop_sise': 64, 'zzz': 1, 'seed': 1}, DATASET_KEYS)
    message = str(refused.value)
    assert message.startswith("datasets:train: unknown option(s) ['crop_sise', 'zzz'] ('crop_sise': did you mean "
                              "'crop_size'?); allowed: ")
    assert message.endswith(str(sorted(DATASET_KEYS))) and '\n' not in message
    with pytest.raises(ConfigError, match=r"^noise: unknown option\(s\) \['qqq'\]; allowed: "):
        check_keys('noise', {'qqq': 1}, NOISE_KEYS)  # no near key: no hint


def test_every_default_belongs_to_a_key_the_dataset_accepts():
    assert set(DEFAULTS) <= DATASET_KEYS and set(PAPER_ONLY_KEYS) <= DATASET_KEYS
    assert {'noise', 'misalignment', 'synthetic'} <= DATASET_KEYS
    assert NOISE_KEYS == set(NOISE_DEFAULTS) and MISALIGNMENT_KEYS == set(MISALIGNMENT_DEFAULTS)
    assert SYNTHETIC_KEYS == {'split', 'num_scenes', 'size', 'workers'}
    assert not DATASET_KEYS & BASICSR_DATASET_KEYS  # ours and BasicSR's never collide
    assert DEFAULTS['degradation'] in DEGRADATIONS and DEFAULTS['subset'] in SUBSETS
    assert MISALIGNMENT_DEFAULTS['scale_pivot'] in SCALE_PIVOTS
