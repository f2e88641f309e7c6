"""Every option file parses with BasicSR's own loader and builds its model and datasets.

Paths may point at data that is not here (FAID, frozen sets, 200 synthetic scenes): each file is
built with a tiny substitute (a 2-scene synthetic folder, 64 px crops, width 1/16) and runs one
training step or one test forward.
"""
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import fnf_basicsr  # noqa: F401  (first: it makes basicsr importable on today's torchvision)
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils.options import ordered_yaml
from fnf_basicsr.data.dataset_options import DEFAULTS
from fnf_basicsr.data.synthetic import generate_split

OPTIONS_DIR = Path(__file__).resolve().parent.parent / 'options'
OPTION_FILES = sorted(OPTIONS_DIR.rglob('*.yml'))
TABLE_EXPERIMENTS = ['fnf', 'noflash', 'burst_bpn', 'direct', 'kpn', 'bpn', 'fnf_flashref', 'fnf_nolowpass']
# BasicSR's own restorers trained as 1x flash/no-flash restorers (compared beside DeepFnF), and their tiny sizes.
BASICSR_RESTORERS = ['swinir', 'rrdbnet']
# The later literature's protocol (options/srgb_awgn/), for these networks.
AWGN_EXPERIMENTS = ['fnf', 'kpn', 'bpn', 'direct', 'swinir', 'rrdbnet']
# CPU recipes with no FAID counterpart.
CPU_ONLY = {'train_fnf_long.yml', 'train_fnf_long_captures.yml'}
TINY_FOREIGN = {'SwinIR': {'img_size': 64, 'embed_dim': 12, 'depths': [1], 'num_heads': [2]},
                'RRDBNet': {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}}


def load(path):
    import yaml
    with open(path) as handle:
        return yaml.load(handle, Loader=ordered_yaml()[0])


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes')
    generate_split(root, 'train', num_scenes=2, size=96, workers=1, progress=False)
    return root


def substitute_dataset(dataset_opt, phase, scenes):
    opt = {key: value for key, value in dataset_opt.items()
           if key not in ('frozen_root', 'synthetic', 'io_backend', 'subset', 'displacement_bins')}
    opt.update(phase=phase, dataroot=str(scenes), crop_size=64, exclude_test_split=False)
    if phase == 'train':
        opt['batch_size_per_gpu'] = 1  # the 2 substitute scenes hold fewer samples than the files' batches
    if phase != 'train' and opt.get('degradation') == 'srgb_awgn':
        opt['awgn_sigmas'] = opt.get('awgn_sigmas', [25])[:1]
    elif phase != 'train':
        opt['dimming_factors'] = opt.get('dimming_factors', [50])[:1]
    return opt


def is_awgn(path):
    return 'srgb_awgn' in path.relative_to(OPTIONS_DIR).parts


def substitute_options(opt, path, scenes, tmp_path):
    is_train = path.stem.startswith('train_')
    opt.update(is_train=is_train, num_gpu=0, dist=False, rank=0, world_size=1)
    opt['network_g'].update(TINY_FOREIGN.get(opt['network_g']['type'], {'width': 0.0625}))
    if 'num_basis' in opt['network_g'] or opt['network_g']['type'] in ('DeepFnF', 'BPN'):
        opt['network_g']['num_basis'] = 4
    opt['path'].update(pretrain_network_g=None, experiments_root=str(tmp_path), models=str(tmp_path),
                       training_states=str(tmp_path), visualization=str(tmp_path), log=str(tmp_path),
                       results_root=str(tmp_path))
    opt['datasets'] = {name: substitute_dataset(d, name.split('_')[0], scenes) for name, d in opt['datasets'].items()}
    return opt


def test_every_paper_experiment_has_training_and_test_files_and_a_synthetic_twin():
    names = {p.relative_to(OPTIONS_DIR).as_posix() for p in OPTION_FILES}
    for stem in TABLE_EXPERIMENTS + BASICSR_RESTORERS:
        for kind in ('train', 'test'):
            assert f'{kind}_{stem}.yml' in names and f'synthetic/{kind}_{stem}.yml' in names
    for folder in (OPTIONS_DIR, OPTIONS_DIR / 'srgb_awgn'):
        twins = {f.name for f in (folder / 'synthetic').glob('*.yml')} - CPU_ONLY
        assert {f.name for f in folder.glob('*.yml')} == twins
    assert 'test_fnf_fig3.yml' in names and 'synthetic/train_fnf_long.yml' in names
    for stem in AWGN_EXPERIMENTS:
        for kind in ('train', 'test'):
            assert f'srgb_awgn/{kind}_{stem}.yml' in names


@pytest.mark.parametrize('path', OPTION_FILES, ids=lambda p: p.relative_to(OPTIONS_DIR).as_posix())
def test_option_file_builds_and_runs(path, scenes, tmp_path):
    opt = load(path)
    suffixes = ('_awgn' if is_awgn(path) else '') + ('_synthetic' if path.parent.name == 'synthetic' else '')
    expected_name = path.stem + suffixes
    assert opt['name'] == expected_name, 'the experiment name must say which file it came from'
    assert opt['model_type'] == 'FnFModel'
    if path.parent.name == 'synthetic':
        assert opt['num_gpu'] == 0, 'synthetic twins run on a CPU'
    opt = substitute_options(opt, path, scenes, tmp_path)
    datasets = {name: build_dataset(d) for name, d in opt['datasets'].items()}
    model = build_model(opt)
    phase = 'train' if opt['is_train'] else 'test'
    data = next(iter(DataLoader(datasets[phase], batch_size=1)))
    network = opt['network_g']
    assert data['lq'].shape[1] == next(network[k] for k in ('in_channels', 'num_in_ch', 'in_chans') if k in network)
    model.feed_data(data)
    if opt['is_train']:
        model.optimize_parameters(1)
        assert all(torch.isfinite(torch.tensor(v)) for v in model.log_dict.values())
    else:
        model.test()
        assert model.output.shape == data['gt'].shape


def released_loss(pred, target):
    """The released code's training loss, written from its definition: mean squared error plus ONE mean of
    |g(pred) - g(target)|, g stacking 0.5 * dy and 0.5 * dx over the common top-left (H-1) x (W-1) region."""
    def g(image):
        corner = image[..., :-1, :-1]
        return torch.cat([0.5 * (image[..., 1:, :-1] - corner), 0.5 * (image[..., :-1, 1:] - corner)], dim=1)
    return ((pred - target) ** 2).mean() + (g(pred) - g(target)).abs().mean()


@pytest.mark.parametrize('path', [p for p in OPTION_FILES if p.stem.startswith('train_')],
                         ids=lambda p: p.relative_to(OPTIONS_DIR).as_posix())
def test_training_files_reproduce_the_released_loss_and_dimming(path):
    from basicsr.losses import build_loss
    from fnf_basicsr.models.fnf_model import DEFAULT_PIXEL_LOSS
    train = load(path)['train']
    losses = [build_loss(dict(opt)) for opt in (train.get('pixel_opt') or DEFAULT_PIXEL_LOSS, train['gradient_opt'])]
    generator = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 37, 53, generator=generator), torch.rand(2, 3, 37, 53, generator=generator)
    ratio = sum(loss(pred, target) for loss in losses) / released_loss(pred, target)
    assert ratio.item() == pytest.approx(1.0, abs=1e-4)
    train_data = load(path)['datasets']['train']
    if is_awgn(path):  # no dimming in that protocol; the dataset refuses the option there
        assert train_data['degradation'] == 'srgb_awgn' and 'dimming_range' not in train_data
        return
    # Released code: alpha log-uniform in [0.02, 0.2], i.e. dimming in [5, 50]: the dataset's default, which a
    # reproduction file does not restate.
    assert 'dimming_range' not in train_data and DEFAULTS['dimming_range'] == (5.0, 50.0)


@pytest.mark.parametrize('path', [p for p in OPTION_FILES if p.stem.startswith('test_')],
                         ids=lambda p: p.relative_to(OPTIONS_DIR).as_posix())
def test_test_files_build_the_network_their_training_file_trains(path):
    """No weight shape tells some network options apart (input_normalization, upsampling): a test file must
    repeat its training file's network_g, or it scores the checkpoint with another computation."""
    experiment = path.stem[len('test_'):].removesuffix('_fig3')
    trained = load(path.parent / f'train_{experiment}.yml')['network_g']
    assert dict(load(path)['network_g']) == dict(trained)
