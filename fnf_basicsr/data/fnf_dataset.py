"""FlashNoFlashDataset: FAID-format pairs (folder or LMDB) -> simulated low-light captures.

Storage layouts read here (and written by ``scripts/data_preparation/create_lmdb.py`` and
``scripts/data_preparation/freeze_testset.py``):

* FAID folder: ``<Name>_ambient.png`` / ``<Name>_flash.png`` (:mod:`fnf_basicsr.data.faid`).
* LMDB of crops (:mod:`fnf_basicsr.data.lmdb_store`).
* Frozen set: ``manifest.json`` plus one ``.npz`` per sample (:mod:`fnf_basicsr.data.frozen_set`).
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Sequence

import numpy as np
import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from fnf_basicsr.data import faid
from fnf_basicsr.data.dataset_options import (BASICSR_DATASET_KEYS, DATASET_KEYS, DEFAULTS, DEGRADATIONS, FULL_IMAGE,
                                              MISALIGNMENT_DEFAULTS, MISALIGNMENT_KEYS, NOISE_DEFAULTS, NOISE_KEYS,
                                              PAPER_ONLY_KEYS, SCALE_PIVOTS, SYNTHETIC_KEYS, check_choice, check_keys)
from fnf_basicsr.data.decoded_cache import MIB, DecodedCache
from fnf_basicsr.data.degradation import REFERENCE_FRAMES, make_awgn_sample, make_sample, sample_dict
from fnf_basicsr.data.frozen_set import check_matches
from fnf_basicsr.data.homography import (CameraMotion, homography_for_displacement, image_origin_pivot,
                                         required_margin, sample_camera_motion)
from fnf_basicsr.data.input_layout import INPUT_MODES
from fnf_basicsr.data.isp import IspDegradation
from fnf_basicsr.data.lmdb_store import parse_crop_key
from fnf_basicsr.data.noise import log_uniform, sample_noise_params
from fnf_basicsr.data.sample_sources import open_scene_source, open_stored_test_set
from fnf_basicsr.data.scene_selection import read_val_names, select_names
from fnf_basicsr.errors import ConfigError, DataError
from fnf_basicsr.utils.rendering import srgb_8bit



def sample_key(name: str, dimming: float, displacement_bin: Sequence[float] | None = None) -> str:
    """Unique, extension-free name of a validation sample, e.g. ``Toys_242_dim12p5``.

    Dots are spelled ``p`` because BasicSR strips what follows the last dot of ``lq_path``.

    Args:
        name: the scene (or LMDB crop) name.
        dimming: the dimming factor.
        displacement_bin: ``(low, high)`` edges of the sample's displacement bin, or None.

    Returns:
        ``<name>[_disp<low>-<high>]_dim<dimming>`` with dots spelled ``p``.

    Example:
        >>> sample_key('Toys_242', 12.5), sample_key('Toys_242', 50.0, (0.0, 2.5))
        ('Toys_242_dim12p5', 'Toys_242_disp0-2p5_dim50')
    """
    parts = [name]
    if displacement_bin is not None:
        parts.append('disp{:g}-{:g}'.format(*displacement_bin))
    parts.append(f'dim{dimming:g}')
    return '_'.join(parts).replace('.', 'p')


@DATASET_REGISTRY.register()
class FlashNoFlashDataset(data.Dataset):
    """Simulated low-light flash/no-flash captures from FAID-format pairs (paper Sec. 4).

    Training samples draw a random crop, homography, dimming factor, noise level and noise;
    validation/test samples are deterministic per index (independent of worker count, process
    and machine): a central crop, one homography per image shared by its dimming factors, fixed
    noise levels and the listed dimming factors. See :mod:`fnf_basicsr.data.degradation`.

    Options (YAML keys):
        dataroot (str): FAID folder, or LMDB folder with ``io_backend: {type: lmdb}``; with
            ``synthetic`` set, the root under which the synthetic split is generated.
        io_backend (dict): ``{type: disk}`` (default) or ``{type: lmdb}`` (BasicSR's FileClient).
        phase (str): ``train``, ``val`` or ``test`` (set by BasicSR from the dataset's key).
        crop_size (int): side of the crops, default 448; ``full`` (whole images) for ``srgb_awgn``
            val/test sets.
        margin (int): pixels read around each crop for the warp, default 16; widened per sample
            when a homography reaches further (the image border is then repeated, as the
            released code does, where the image ends).
        input_mode (str): ``flash_noflash`` (12 ch, default), ``noflash`` (6 ch) or
            ``noflash_burst`` (12 ch); channel layout in :mod:`fnf_basicsr.data.input_layout`.
        reference (str): ``noflash`` (default; the flash is warped) or ``flash``.
        dimming_range (list): train: dimming factor log-uniform in [low, high]; default
            [5, 50] (the released code, alpha in [0.02, 0.2]); the paper's text says [2, 50].
        dimming_factors (list): val/test dimming factors, default [100, 50, 25, 12.5]; the
            dataset length is images x factors (x displacement bins).
        noise (dict): ``log_read_range``, ``log_shot_range`` (train ranges of log10 sigma,
            defaults from :mod:`fnf_basicsr.data.noise`); ``sig_read``, ``sig_shot`` (fixed
            values: used in val/test, default 10^-2.6 and 10^-1.8; in train they replace the
            ranges when given).
        misalignment (dict): ``enabled`` (default true), ``rotation_deg`` (0.5),
            ``scale_range`` ([0.98, 1.02]), ``translation_px`` ([-2, 2]; paper text [0, 2]),
            ``fov_deg`` (90), ``scale_pivot``: ``image_origin`` (default: the released code
            scales about the whole image's top-left corner, which makes displacements grow with
            the crop's position, ~3x larger for central crops of 1440x1080 images) or
            ``crop_center``.
        subset (str): which scenes: ``all`` (default), ``train``, ``val`` or ``test`` (see
            :func:`select_names`); with ``num_val`` (128) and ``val_names_file`` (a text file,
            one scene name per line).
        exclude_test_split (bool): leave the paper's 128 test scenes out (default true, except
            with ``subset: test``).
        seed (int): val/test base seed, default 0; a sample depends only on the seed, its
            image's name and its bin and dimming-factor indices (not on workers or machines).
        displacement_bins (list): val/test sweep of paper Fig. 3: bin edges in pixels, e.g.
            [0, 2, 4, 8, 12, 16, 20]; each image is used once per bin with a homography whose
            mean displacement is drawn uniformly in the bin.
        frozen_root (str): read a frozen set (scripts/data_preparation/freeze_testset.py) instead of degrading
            on the fly; its manifest fixes every degradation option. When ``dataroot`` or
            ``synthetic`` is given too, the options must match those the set was frozen with.
        synthetic (dict): ``split``, ``num_scenes``, ``size``, ``workers``: generate (on first
            use) and read the synthetic split under ``dataroot``.
        max_images (int): use only the first N images (or LMDB crops).
        decoded_cache_mb (float): keep up to this many MiB of decoded images per process, least
            recently used out first (default 0: only the last image); pair it with
            ``persistent_workers: true`` (:mod:`fnf_basicsr.data.decoded_cache`).
        clip_input (bool): clip the noisy frames to [0, 1] as a sensor and every image file do
            (:func:`~fnf_basicsr.data.degradation.make_sample`); default false, the released code's.
            Train with it for ``fnf-denoise`` on files and raw captures: a model that never saw
            clipped noise reads the positive bias of clipped dark pixels as colour (docs/denoising.md).
        isp (dict): off by default. Puts both noisy frames, after the noise, through a phone-like
            ISP (:class:`fnf_basicsr.data.isp.IspDegradation`), for models meant for 8-bit/JPEG
            pictures: ``demosaic`` (default true: RGGB mosaic, bilinear demosaicking),
            ``jpeg_quality`` (``[low, high]``, one integer quality per sample drawn from the
            sample's generator, so val/test samples stay deterministic; a single number; or null
            for lossless 8 bits), ``bayer_pattern`` (``RGGB``). Each frame is auto-exposed for
            its 8 bits and brought back to the dataset's scale; the noise-std maps keep the noise
            parameters before the ISP, as ``estimate_noise`` reports them for such pictures.
            Applied when degrading on the fly (not recorded by frozen sets yet).

        degradation (str): ``paper`` (default: everything above) or ``srgb_awgn``: the later
            literature's protocol (docs/srgb_awgn.md). Both images are rendered to 8-bit sRGB with
            their colour matrix (values / 255), the no-flash one gets white Gaussian noise of std
            ``sigma / 255``, the flash stays clean; no dimming, no misalignment; ``gt`` is the clean
            sRGB no-flash image and the samples say ``encoded`` (already sRGB: rendering leaves them
            as they are). The options of the paper's simulation (dimming, noise, isp,
            displacement_bins, misalignment, reference flash) are refused with it.
        awgn_sigmas (list): ``srgb_awgn`` noise levels in 8-bit units, default [25, 50, 75]: val/test
            samples are images x sigmas; a training sample draws one of them.
        awgn_clip (bool): clip the noisy sRGB frames to [0, 1] (RFFNet's protocol); default false
            (RIDFnF's and LGCNet's: the noise is not clipped).
        split (str): which published FAID split ``subset`` reads: ``paper`` (default, 128 test
            scenes) or ``ridfnf`` (256 test, 256 validation), :func:`select_names`.

    Output dict: ``lq`` (C, S, S), ``gt`` (3, S, S), ``color_matrix`` (3, 3) float32 tensors;
    0-dim float32 tensors ``gain`` (= ``dimming`` = 1 / alpha), ``sig_read``, ``sig_shot``,
    ``displacement`` (mean Manhattan pixels), ``dimming``, ``awgn_sigma`` (0 in the paper's protocol);
    0-dim bool ``encoded`` (true for ``srgb_awgn``: ``lq``/``gt`` are sRGB already); strings ``key`` and
    ``lq_path`` (the key; BasicSR names saved validation images after it).

    Args:
        opt: the dataset's options (the YAML keys above).

    Raises:
        ConfigError: unknown keys, bad values or a combination the protocol does not allow.
        DataError: the data cannot be read, or images are smaller than the crops.

    Example:
        >>> import tempfile
        >>> from fnf_basicsr.data.faid import ColorMetadata, write_faid_pair
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((64, 64, 3), 0.5, np.float32)
        ...     write_faid_pair(folder, 'Demo_1', image, image, ColorMetadata(np.eye(3), 21))
        ...     dataset = FlashNoFlashDataset({'dataroot': folder, 'phase': 'val', 'crop_size': 32,
        ...                                    'dimming_factors': [50, 25]})
        ...     sample = dataset[1]
        >>> len(dataset), sample['key'], sample['lq'].shape, float(sample['gain'])
        (2, 'Demo_1_dim25', torch.Size([12, 32, 32]), 25.0)
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        check_keys(f'dataset {opt.get("name", "")!r}', opt, DATASET_KEYS | BASICSR_DATASET_KEYS)
        self.phase = opt.get('phase', 'train')
        self.is_train = self.phase == 'train'
        crop_size = opt.get('crop_size', DEFAULTS['crop_size'])
        self.crop_size = None if crop_size == FULL_IMAGE else int(crop_size)
        self.margin = int(opt.get('margin', DEFAULTS['margin']))
        if (self.crop_size is not None and self.crop_size < 1) or self.margin < 0:
            raise ConfigError(f'crop_size must be >= 1 and margin >= 0, got crop_size {self.crop_size} and margin '
                              f'{self.margin}')
        if opt.get('max_images') is not None and int(opt['max_images']) < 1:
            raise ConfigError(f'max_images must be >= 1 (or left out for all images), got {opt["max_images"]}')
        self.input_mode = opt.get('input_mode', DEFAULTS['input_mode'])
        self.reference = opt.get('reference', DEFAULTS['reference'])
        check_choice('input_mode', self.input_mode, INPUT_MODES)
        check_choice('reference', self.reference, REFERENCE_FRAMES)
        self.seed = int(opt.get('seed', DEFAULTS['seed']))
        self.dimming_range = tuple(float(v) for v in opt.get('dimming_range', DEFAULTS['dimming_range']))
        self.dimming_factors = [float(v) for v in opt.get('dimming_factors', DEFAULTS['dimming_factors'])]
        low, high = self.dimming_range
        if not 0 < low <= high or not self.dimming_factors or min(self.dimming_factors) <= 0:
            raise ConfigError(f'dimming_range must be [low, high] with 0 < low <= high and dimming_factors a '
                             f'non-empty list of positive factors, got {list(self.dimming_range)} and '
                             f'{self.dimming_factors}')
        self._read_noise_options(opt.get('noise') or {})
        self.isp = IspDegradation.from_options(opt.get('isp'))
        self.clip_input = opt.get('clip_input', DEFAULTS['clip_input'])
        if not isinstance(self.clip_input, bool):
            raise ConfigError(f'clip_input must be true or false, got {self.clip_input!r}')
        self._read_misalignment_options(opt.get('misalignment') or {})
        self._read_degradation_options(opt)
        bins = opt.get('displacement_bins', DEFAULTS['displacement_bins'])
        self.displacement_bins = None if bins is None else _bins_from_edges(bins)
        self.io_backend_opt = dict(opt.get('io_backend') or DEFAULTS['io_backend'])
        self._decoded = DecodedCache(int(float(opt.get('decoded_cache_mb', 0)) * MIB))
        self._warn_if_cache_is_rebuilt(opt)
        self._train_rng, self._train_rng_seed = None, None
        if opt.get('frozen_root'):
            self._init_frozen(opt['frozen_root'])
        else:
            self.frozen = None
            self._init_source(opt)
        if self.is_train:
            self._check_batch_fits()

    # ----------------------------------------------------------------------------- options

    def _warn_if_cache_is_rebuilt(self, opt):
        workers = int(opt.get('num_worker_per_gpu', 0) or 0)
        if self._decoded.max_bytes and self.is_train and workers > 0 and not opt.get('persistent_workers'):
            get_root_logger().warning(
                f'dataset {opt.get("name", "")!r}: decoded_cache_mb is set but DataLoader workers are re-created '
                'every epoch, so each epoch decodes every image again; add persistent_workers: true')

    def _read_noise_options(self, noise):
        check_keys('noise', noise, NOISE_KEYS)
        given, noise = noise, {**NOISE_DEFAULTS, **noise}
        self.log_read_range = tuple(noise['log_read_range'])
        self.log_shot_range = tuple(noise['log_shot_range'])
        fixed = 'sig_read' in given or 'sig_shot' in given
        if self.is_train and fixed and not ('sig_read' in given and 'sig_shot' in given):
            raise ConfigError('noise: give both sig_read and sig_shot to fix the training noise, or neither')
        self.fixed_noise = (float(noise['sig_read']), float(noise['sig_shot']))
        if not all(math.isfinite(v) and v >= 0 for v in self.fixed_noise):
            raise ConfigError(f'noise: sig_read and sig_shot must be finite and >= 0, got {list(self.fixed_noise)}')
        self.sample_noise = self.is_train and not fixed

    def _read_degradation_options(self, opt):
        """``degradation``, ``awgn_sigmas`` and ``split``; ``self.levels`` are the val/test levels (the
        dimming factors, or the sigmas of ``srgb_awgn``)."""
        self.degradation = opt.get('degradation', DEFAULTS['degradation'])
        check_choice('degradation', self.degradation, DEGRADATIONS)
        if self.crop_size is None and (self.degradation != 'srgb_awgn' or self.is_train):
            raise ConfigError(f'crop_size: {FULL_IMAGE} (whole images) is for srgb_awgn val/test sets only; give a '
                              f'number of pixels')
        check_choice('split', opt.get('split', DEFAULTS['split']), tuple(faid.SPLIT_FILES))
        self.awgn_sigmas = [float(v) for v in opt.get('awgn_sigmas', DEFAULTS['awgn_sigmas'])]
        self.awgn_clip = opt.get('awgn_clip', DEFAULTS['awgn_clip'])
        self.levels = self.dimming_factors
        if self.degradation != 'srgb_awgn':
            for key in ('awgn_sigmas', 'awgn_clip'):
                if key in opt:
                    raise ConfigError(f'{key} is an option of degradation: srgb_awgn; add that or remove it')
            return
        if not isinstance(self.awgn_clip, bool):
            raise ConfigError(f'awgn_clip must be true or false, got {self.awgn_clip!r}')
        given = [key for key in PAPER_ONLY_KEYS if opt.get(key) is not None]
        if (opt.get('misalignment') or {}).get('enabled'):
            given.append('misalignment.enabled')
        if self.reference != 'noflash':
            given.append('reference')
        if given:
            raise ConfigError(f'degradation srgb_awgn has no dimming, camera noise, ISP or misalignment and scores '
                              f'the no-flash geometry; remove {given} (docs/srgb_awgn.md)')
        if not self.awgn_sigmas or not all(math.isfinite(v) and v > 0 for v in self.awgn_sigmas):
            raise ConfigError(f'awgn_sigmas must be a non-empty list of noise stds > 0 in 8-bit units (e.g. [25, 50, '
                              f'75]), got {self.awgn_sigmas}')
        self.misalign = False
        self.levels = self.awgn_sigmas

    def _read_misalignment_options(self, options):
        check_keys('misalignment', options, MISALIGNMENT_KEYS)
        options = {**MISALIGNMENT_DEFAULTS, **options}
        self.misalign = bool(options['enabled'])
        self.motion_options = {
            'rotation_deg': float(options['rotation_deg']),
            'scale_range': tuple(float(v) for v in options['scale_range']),
            'translation_px': tuple(float(v) for v in options['translation_px']),
        }
        self.fov_deg = float(options['fov_deg'])
        self.scale_pivot = options['scale_pivot']
        check_choice('misalignment.scale_pivot', self.scale_pivot, SCALE_PIVOTS)

    def _init_source(self, opt):
        backend = self.io_backend_opt.get('type', DEFAULTS['io_backend']['type'])
        check_choice('io_backend.type', backend, ('disk', 'lmdb'))
        if 'dataroot' not in opt:
            raise ConfigError('FlashNoFlashDataset needs `dataroot` (a FAID folder or an LMDB) or `frozen_root`')
        self.dataroot = str(opt['dataroot'])
        if opt.get('synthetic'):
            self.dataroot = self._ensure_synthetic(opt['synthetic'])
        self.scenes = open_scene_source(self.dataroot, self.io_backend_opt)
        candidates = self.scenes.keys
        self.entries = self._select_entries(candidates, opt)
        if not self.entries:
            raise ConfigError(f'{self.dataroot}: no images left for subset {opt.get("subset", DEFAULTS["subset"])!r} '
                             f'({len(candidates)} found before selection); check subset / exclude_test_split')

    def _ensure_synthetic(self, options):
        from fnf_basicsr.data.synthetic import ensure_synthetic_dataset
        check_keys('synthetic', options, SYNTHETIC_KEYS)
        missing = {'split', 'num_scenes', 'size'} - set(options)
        if missing:
            raise ConfigError(f'synthetic: missing {sorted(missing)}; e.g. {{split: train, num_scenes: 64, size: 512}}')
        return ensure_synthetic_dataset(self.dataroot, options['split'], int(options['num_scenes']),
                                        int(options['size']), workers=int(options.get('workers', 2)))

    def _select_entries(self, candidates, opt):
        subset = opt.get('subset', DEFAULTS['subset'])
        exclude = bool(opt.get('exclude_test_split', subset != 'test'))
        scene_of = {key: parse_crop_key(key)[0] for key in candidates}
        val_file = opt.get('val_names_file')
        val_names = read_val_names(val_file, set(scene_of.values())) if val_file else None
        chosen = set(select_names(sorted(set(scene_of.values())), subset, exclude,
                                  int(opt.get('num_val', DEFAULTS['num_val'])), val_names,
                                  opt.get('split', DEFAULTS['split'])))
        entries = [key for key in candidates if scene_of[key] in chosen]
        if opt.get('max_images'):
            entries = entries[:int(opt['max_images'])]
        return entries

    def _init_frozen(self, root):
        """A stored test set (:func:`~fnf_basicsr.data.sample_sources.open_stored_test_set`): one of our frozen
        sets, checked against the options when they name a source, or the authors' released test set."""
        self.frozen_root = str(root)
        self.frozen = open_stored_test_set(root)
        stored = self.frozen.recorded_options()
        if stored is not None:
            if 'dataroot' in self.opt or 'synthetic' in self.opt:
                check_matches(root, {'options': stored}, self.opt)
            if 'reference' in self.opt and self.opt['reference'] != stored['reference']:
                raise ConfigError(f'{root}: frozen with reference {stored["reference"]!r} but the options ask for '
                                  f'{self.opt["reference"]!r}; freeze another set with --reference')
            self.reference = stored['reference']
            if self.input_mode not in stored['input_modes']:
                raise ConfigError(f'{root}: frozen for input modes {stored["input_modes"]}, not {self.input_mode!r}; '
                                  f'freeze it again with --input-modes {self.input_mode}')
        self.entries = list(range(len(self.frozen)))
        if self.opt.get('max_images'):
            self.entries = self.entries[:int(self.opt['max_images'])]

    def _check_batch_fits(self):
        """BasicSR drops incomplete batches: a batch larger than a process's share trains 0 iterations."""
        from basicsr.utils.dist_util import get_dist_info
        batch = int(self.opt.get('batch_size_per_gpu', 1))
        world_size = get_dist_info()[1]
        per_process = math.ceil(len(self) * float(self.opt.get('dataset_enlarge_ratio', 1)) / world_size)
        if per_process < batch:
            raise ConfigError(f'dataset {self.opt.get("name", "")!r}: {len(self)} training sample(s), '
                              f'{per_process} per process, but batch_size_per_gpu {batch}: every batch would be '
                              f'dropped and training would run 0 iterations; lower batch_size_per_gpu or raise '
                              f'dataset_enlarge_ratio')

    # ----------------------------------------------------------------------------- indexing

    def __len__(self) -> int:
        """Images (or frozen samples) in training; images x displacement bins x levels in val/test."""
        if self.frozen is not None or self.is_train:
            return len(self.entries)
        return len(self.entries) * self._num_bins() * len(self.levels)

    def _num_bins(self):
        return 1 if self.displacement_bins is None else len(self.displacement_bins)

    def _split_index(self, index):
        """(image, bin, level) indices of a val/test sample; images vary slowest."""
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for a dataset of {len(self)} samples')
        rest, factor_index = divmod(index, len(self.levels))
        image_index, bin_index = divmod(rest, self._num_bins())
        return image_index, bin_index, factor_index

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index``: drawn at random in training, deterministic in val/test (see the class docstring).

        Args:
            index: ``0 .. len - 1``.

        Returns:
            The sample dict of the class docstring.
        """
        if self.frozen is not None:
            return self._frozen_item(index)
        if self.is_train:
            return self._train_item(index)
        return self.simulate(index)

    # ----------------------------------------------------------------------------- samples

    def _train_item(self, index):
        rng = self._worker_rng()
        generator = torch.Generator().manual_seed(int(rng.integers(2 ** 63)))
        entry = self.entries[index]
        pair = self._load(entry)
        if self.degradation == 'srgb_awgn':
            top, left = self._random_crop_position(pair, rng)
            sigma = self.awgn_sigmas[int(torch.randint(len(self.awgn_sigmas), (), generator=generator))]
            return self._degrade_awgn(pair, top, left, sigma, generator, entry, self.input_mode)
        motion = sample_camera_motion(rng, **self.motion_options) if self.misalign else CameraMotion()
        top, left = self._random_crop_position(pair, rng)
        homography = motion.matrix(self.crop_size, self.fov_deg, self._pivot(entry, top, left))
        dimming = log_uniform(*self.dimming_range, generator=generator)
        if self.sample_noise:
            sig_read, sig_shot = sample_noise_params(generator, self.log_read_range, self.log_shot_range)
        else:
            sig_read, sig_shot = self.fixed_noise
        return self._degrade(pair, top, left, homography, dimming, sig_read, sig_shot, generator, entry,
                             self.input_mode)

    def simulate(self, index: int, input_mode: str | None = None) -> dict[str, Any]:
        """The deterministic val/test sample ``index`` (as ``__getitem__``), in any input mode.

        The noise of the no-flash frame does not depend on the input mode, so the frames of
        the three modes can be stored together (scripts/data_preparation/freeze_testset.py).

        Args:
            index: ``0 .. len - 1`` (images vary slowest, then displacement bins, then levels).
            input_mode: the input mode (default: the dataset's).

        Returns:
            The sample dict of the class docstring.

        Raises:
            IndexError: ``index`` out of range.

        Example:
            >>> import tempfile
            >>> from fnf_basicsr.data.faid import ColorMetadata, write_faid_pair
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     image = np.full((64, 64, 3), 0.5, np.float32)
            ...     write_faid_pair(folder, 'Demo_1', image, image, ColorMetadata(np.eye(3), 21))
            ...     dataset = FlashNoFlashDataset({'dataroot': folder, 'phase': 'test', 'crop_size': 32})
            ...     pair, alone = dataset.simulate(0), dataset.simulate(0, 'noflash')
            >>> pair['lq'].shape, alone['lq'].shape, torch.equal(pair['lq'][:3], alone['lq'][:3])
            (torch.Size([12, 32, 32]), torch.Size([6, 32, 32]), True)
        """
        image_index, bin_index, factor_index = self._split_index(index)
        entry = self.entries[image_index]
        pair = self._load(entry)
        top, left = self._central_crop_position(pair)
        # Seeds from the image's name, not its position, so adding or leaving out images changes
        # no other image's sample. One homography per image (and bin), shared by its dimming factors.
        name_seed = _name_seed(entry)
        geometry_rng = np.random.default_rng([self.seed, name_seed, bin_index])
        pivot = self._pivot(entry, top, left)
        bin_edges = None
        if self.displacement_bins is not None:
            bin_edges = self.displacement_bins[bin_index]
            homography = homography_for_displacement(
                geometry_rng.uniform(*bin_edges), self.crop_size, geometry_rng, fov_deg=self.fov_deg,
                scale_pivot=pivot, **self.motion_options)
        elif self.misalign:
            motion = sample_camera_motion(geometry_rng, **self.motion_options)
            homography = motion.matrix(self.crop_size, self.fov_deg, pivot)
        else:
            homography = np.eye(3)
        noise_seed = np.random.SeedSequence([self.seed, name_seed, bin_index, factor_index]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(noise_seed))
        if self.degradation == 'srgb_awgn':
            sigma = self.awgn_sigmas[factor_index]
            return self._degrade_awgn(pair, top, left, sigma, generator, awgn_sample_key(entry, sigma),
                                      input_mode or self.input_mode)
        dimming = self.dimming_factors[factor_index]
        sig_read, sig_shot = self.fixed_noise
        key = sample_key(entry, dimming, bin_edges)
        return self._degrade(pair, top, left, homography, dimming, sig_read, sig_shot, generator, key,
                             input_mode or self.input_mode)

    def _degrade(self, pair, top, left, homography, dimming, sig_read, sig_shot, generator, key, input_mode):
        ambient, flash_only, color_matrix, source = pair
        margin = max(self.margin, required_margin(homography, self.crop_size))
        window = [_window(image, top - margin, left - margin, self.crop_size + 2 * margin)
                  for image in (ambient, flash_only)]
        sample = make_sample(*window, alpha=1.0 / dimming, sig_read=sig_read, sig_shot=sig_shot,
                             homography=homography, crop_size=self.crop_size, reference=self.reference,
                             mode=input_mode, generator=generator, isp=self.isp, clip=self.clip_input)
        return sample_dict(sample['lq'], sample['gt'], color_matrix, sample['gain'], sig_read, sig_shot,
                            sample['displacement'], dimming, key)

    def _degrade_awgn(self, pair, top, left, sigma, generator, key, input_mode):
        ambient, flash_only, color_matrix, _ = pair
        matrix = torch.as_tensor(np.asarray(color_matrix, dtype=np.float32))
        if self.crop_size is None:
            windows = [image.astype(np.float32) / faid.UINT16_MAX for image in (ambient, flash_only)]
        else:
            windows = [_window(image, top, left, self.crop_size) for image in (ambient, flash_only)]
        noflash, flash = (srgb_8bit(torch.from_numpy(window.transpose(2, 0, 1)), matrix) for window in windows)
        sample = make_awgn_sample(noflash, flash, sigma=sigma, mode=input_mode, generator=generator,
                                  clip=self.awgn_clip)
        return sample_dict(sample['lq'], sample['gt'], np.eye(3), 1.0, sample['sig_read'], 0.0, 0.0, 1.0, key,
                            awgn_sigma=sigma, encoded=True)

    def _frozen_item(self, index):
        return self.frozen.item(self.entries[index], self.input_mode)

    # ----------------------------------------------------------------------------- geometry

    def _random_crop_position(self, pair, rng):
        height, width = self._checked_size(pair)
        top = int(rng.integers(self.margin, height - self.crop_size - self.margin + 1))
        left = int(rng.integers(self.margin, width - self.crop_size - self.margin + 1))
        return top, left

    def _central_crop_position(self, pair):
        if self.crop_size is None:
            return 0, 0
        height, width = self._checked_size(pair)
        return (height - self.crop_size) // 2, (width - self.crop_size) // 2

    def _checked_size(self, pair):
        ambient, _, _, source = pair
        height, width = ambient.shape[:2]
        needed = self.crop_size + 2 * self.margin
        if height < needed or width < needed:
            raise DataError(f'{source} is {width}x{height}, smaller than crop_size + 2 * margin = {needed} '
                             f'({self.crop_size} + 2 * {self.margin}); use a smaller crop_size or margin, or pad '
                             f'the image')
        return height, width

    def _pivot(self, entry, top, left):
        if self.scale_pivot == 'crop_center':
            return None
        _, crop_top, crop_left = parse_crop_key(entry)
        return image_origin_pivot(crop_top + top, crop_left + left)

    # ----------------------------------------------------------------------------- reading

    def _worker_rng(self):
        """The training generator of this process: seeded from torch's seed, which BasicSR sets
        per rank and the DataLoader per worker and epoch, so workers differ and runs repeat."""
        seed = torch.initial_seed()
        if self._train_rng_seed != seed:
            self._train_rng, self._train_rng_seed = np.random.default_rng(seed), seed
        return self._train_rng

    def _load(self, entry):
        """The :class:`~fnf_basicsr.data.sample_sources.ScenePair` of an image or LMDB crop (see decoded_cache_mb)."""
        cached = self._decoded.get(entry)
        if cached is not None:
            return cached
        pair = self.scenes.load(entry)
        self._decoded.put(entry, pair, pair.ambient.nbytes + pair.flash_only.nbytes)
        return pair


def _window(image_u16, top, left, size):
    """``size`` x ``size`` float32 window at (top, left); where it leaves the image the border repeats."""
    height, width = image_u16.shape[:2]
    inside = image_u16[max(top, 0):min(top + size, height), max(left, 0):min(left + size, width)]
    pads = ((max(-top, 0), max(top + size - height, 0)), (max(-left, 0), max(left + size - width, 0)), (0, 0))
    if any(before or after for before, after in pads[:2]):
        inside = np.pad(inside, pads, mode='edge')
    return inside.astype(np.float32) / faid.UINT16_MAX


def awgn_sample_key(name: str, sigma: float) -> str:
    """Unique, extension-free name of an ``srgb_awgn`` val/test sample, e.g. ``Toys_242_sigma25``.

    Args:
        name: the scene name.
        sigma: the noise level in 8-bit units.

    Returns:
        ``<name>_sigma<sigma>`` with dots spelled ``p``.

    Example:
        >>> awgn_sample_key('Toys_242', 25.0), awgn_sample_key('Toys_242', 12.5)
        ('Toys_242_sigma25', 'Toys_242_sigma12p5')
    """
    return f'{name}_sigma{sigma:g}'.replace('.', 'p')


def _name_seed(name):
    """A stable 64-bit integer for a name (Python's hash() changes between processes)."""
    return int.from_bytes(hashlib.sha256(name.encode('utf-8')).digest()[:8], 'little')


def _bins_from_edges(edges):
    edges = [float(v) for v in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 0:
        raise ConfigError(f'displacement_bins must be increasing edges >= 0 (at least two), got {edges}')
    return list(zip(edges[:-1], edges[1:]))
