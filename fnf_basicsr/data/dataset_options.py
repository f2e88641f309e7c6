"""The options of FlashNoFlashDataset: their defaults, the keys it accepts, and the two checks of a value.

A leaf module (it imports no dataset code), so the dataset, the frozen-set format (which records a set's
options with these defaults) and the command-line tools read one schema.
"""
from __future__ import annotations

import difflib
from typing import Any, Collection, Mapping

from fnf_basicsr.data.homography import (DEFAULT_FOV_DEG, DEFAULT_ROTATION_DEG, DEFAULT_SCALE_RANGE,
                                         DEFAULT_TRANSLATION_PX)
from fnf_basicsr.data.noise import LOG_READ_RANGE, LOG_SHOT_RANGE, TEST_SIG_READ, TEST_SIG_SHOT
from fnf_basicsr.errors import ConfigError

# Protocol defaults (paper Sec. 4 and the released code).
DEFAULT_CROP_SIZE = 448
DEFAULT_MARGIN = 16  # covers every homography of the default distribution at crop 448 (needs <= 14)
DEFAULT_DIMMING_RANGE = (5.0, 50.0)  # released code: alpha in [0.02, 0.2]; paper text: [2, 50]
DEFAULT_DIMMING_FACTORS = (100.0, 50.0, 25.0, 12.5)
DEFAULT_SCALE_PIVOT = 'image_origin'  # the released code; crop_center gives ~3x smaller displacements
DEFAULT_NUM_VAL = 128
# paper: Sec. 4's raw low-light simulation; srgb_awgn: the later literature's Gaussian noise on 8-bit sRGB
# no-flash images (CU-Net, RIDFnF, LGCNet, RFFNet; docs/srgb_awgn.md).
DEGRADATIONS = ('paper', 'srgb_awgn')
DEFAULT_AWGN_SIGMAS = (25.0, 50.0, 75.0)
FULL_IMAGE = 'full'  # crop_size of srgb_awgn val/test sets scored on whole images, as the literature does
# Options of the paper's simulation that srgb_awgn has no use for: refused there rather than ignored.
PAPER_ONLY_KEYS = ('dimming_range', 'dimming_factors', 'noise', 'isp', 'displacement_bins', 'clip_input')
# The default of each option that selects or degrades the samples, by YAML key (top level, noise:,
# misalignment:). The dataset reads its options with these, and a frozen set records its options
# with them (frozen_set.degradation_options), so what a set says it was made with is what was made.
DEFAULTS = {'io_backend': {'type': 'disk'}, 'subset': 'all', 'num_val': DEFAULT_NUM_VAL, 'max_images': None,
            'crop_size': DEFAULT_CROP_SIZE, 'margin': DEFAULT_MARGIN, 'input_mode': 'flash_noflash',
            'reference': 'noflash', 'seed': 0, 'dimming_range': DEFAULT_DIMMING_RANGE,
            'dimming_factors': DEFAULT_DIMMING_FACTORS, 'displacement_bins': None, 'degradation': 'paper',
            'awgn_sigmas': DEFAULT_AWGN_SIGMAS, 'awgn_clip': False, 'split': 'paper', 'clip_input': False}
NOISE_DEFAULTS = {'log_read_range': LOG_READ_RANGE, 'log_shot_range': LOG_SHOT_RANGE, 'sig_read': TEST_SIG_READ,
                  'sig_shot': TEST_SIG_SHOT}
MISALIGNMENT_DEFAULTS = {'enabled': True, 'rotation_deg': DEFAULT_ROTATION_DEG, 'scale_range': DEFAULT_SCALE_RANGE,
                         'translation_px': DEFAULT_TRANSLATION_PX, 'fov_deg': DEFAULT_FOV_DEG,
                         'scale_pivot': DEFAULT_SCALE_PIVOT}
SUBSETS = ('all', 'train', 'val', 'test')
SCALE_PIVOTS = ('crop_center', 'image_origin')
MISALIGNMENT_KEYS = set(MISALIGNMENT_DEFAULTS)
NOISE_KEYS = set(NOISE_DEFAULTS)
SYNTHETIC_KEYS = {'split', 'num_scenes', 'size', 'workers'}
DATASET_KEYS = {'dataroot', 'io_backend', 'phase', 'crop_size', 'margin', 'input_mode', 'reference', 'dimming_range',
                'dimming_factors', 'noise', 'misalignment', 'subset', 'num_val', 'val_names_file',
                'exclude_test_split', 'seed', 'displacement_bins', 'frozen_root', 'synthetic', 'max_images',
                'decoded_cache_mb', 'isp', 'degradation', 'awgn_sigmas', 'awgn_clip', 'split',
                'clip_input'}
# Keys BasicSR itself reads from a dataset's options (build_dataloader, train_pipeline, parse_options).
BASICSR_DATASET_KEYS = {'name', 'type', 'scale', 'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio',
                        'use_shuffle', 'prefetch_mode', 'pin_memory', 'persistent_workers', 'num_prefetch_queue'}


def check_choice(label: str, value: Any, choices: Collection) -> None:
    """Refuse ``value`` unless it is one of ``choices``.

    Args:
        label: the option's name, quoted in the message.
        value: the value given.
        choices: the allowed values.

    Raises:
        ConfigError: ``value`` is not in ``choices``; the message lists them.

    Example:
        >>> check_choice('reference', 'flash', ('noflash', 'flash'))
        >>> try:
        ...     check_choice('reference', 'both', ('noflash', 'flash'))
        ... except ConfigError as error:
        ...     print(error)
        reference must be one of ['noflash', 'flash'], got 'both'
    """
    if value not in choices:
        raise ConfigError(f'{label} must be one of {list(choices)}, got {value!r}')


def check_keys(label: str, options: Mapping, allowed: Collection[str]) -> None:
    """Refuse option keys outside ``allowed``, suggesting the nearest allowed key for each (typos).

    Args:
        label: what holds the options (e.g. ``noise``), quoted in the message.
        options: the options given.
        allowed: the keys accepted.

    Raises:
        ConfigError: unknown keys, each with its nearest allowed key when there is one.

    Example:
        >>> try:
        ...     check_keys('noise', {'sig_reed': 0.01}, NOISE_KEYS)
        ... except ConfigError as error:
        ...     print(str(error).split(';')[0])
        noise: unknown option(s) ['sig_reed'] ('sig_reed': did you mean 'sig_read'?)
    """
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        hints = [(key, difflib.get_close_matches(key, sorted(allowed), n=1)) for key in unknown]
        hint = '; '.join(f'{key!r}: did you mean {match[0]!r}?' for key, match in hints if match)
        raise ConfigError(f'{label}: unknown option(s) {unknown}' + (f' ({hint})' if hint else '')
                          + f'; allowed: {sorted(allowed)}')
