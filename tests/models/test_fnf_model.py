"""FnFModel: losses on rendered sRGB, validation metrics and images, any registered network."""
import copy
import math

import pytest
import torch
from torch.utils.data import DataLoader

import fnf_basicsr  # noqa: F401  (first: it makes basicsr importable on today's torchvision)
from basicsr.data import build_dataset
from basicsr.models import build_model
from fnf_basicsr.errors import ConfigError
from fnf_basicsr.data.synthetic import generate_split

TINY_DEEPFNF = {'type': 'DeepFnF', 'width': 0.0625, 'num_basis': 4, 'kernel_size': 5, 'upsample': 2}
# One of BasicSR's own restorers configured 12 -> 3 channels at scale 1 (pixel-unshuffle by 4 inside).
BASICSR_RRDB = {'type': 'RRDBNet', 'num_in_ch': 12, 'num_out_ch': 3, 'scale': 1, 'num_feat': 8, 'num_block': 1,
                'num_grow_ch': 4}
# BasicSR's SwinIR as a 1x restorer: it returns as many channels as it takes (12); the first 3 are the estimate.
BASICSR_SWINIR = {'type': 'SwinIR', 'in_chans': 12, 'upscale': 1, 'img_size': 32, 'window_size': 8, 'embed_dim': 12,
                  'depths': [1], 'num_heads': [2], 'mlp_ratio': 1, 'upsampler': '', 'resi_connection': '1conv'}
NETWORKS = {'DeepFnF': TINY_DEEPFNF, 'basicsr-RRDBNet': BASICSR_RRDB, 'basicsr-SwinIR': BASICSR_SWINIR}


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes')
    generate_split(root, 'train', num_scenes=2, size=64, workers=1, progress=False)
    return root


def dataset(scenes, phase, **extra):
    opt = {'name': f'synthetic_{phase}', 'type': 'FlashNoFlashDataset', 'phase': phase, 'dataroot': str(scenes),
           'crop_size': 32, 'margin': 8, 'dimming_factors': [20], 'exclude_test_split': False, **extra}
    return build_dataset(opt)


def model_options(tmp_path, network, is_train=True, **train_extra):
    experiments = tmp_path / 'experiments' / 'unit'
    return {
        'name': 'unit', 'model_type': 'FnFModel', 'is_train': is_train, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'network_g': copy.deepcopy(network),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'experiments_root': str(experiments),
                 'models': str(experiments / 'models'), 'training_states': str(experiments / 'training_states'),
                 'visualization': str(experiments / 'visualization'), 'log': str(experiments)},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [1000],
                                                                        'gamma': 0.5},
                  'gradient_opt': {'type': 'GradientL1Loss', 'loss_weight': 1.0}, **train_extra},
        'val': {'save_img': True, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                                              'ssim': {'type': 'calculate_ssim', 'crop_border': 0}}},
    }


def batch(scenes, size=2):
    return next(iter(DataLoader(dataset(scenes, 'val'), batch_size=size)))


class RecordingTensorBoard:

    def __init__(self):
        self.images, self.scalars = {}, {}

    def add_image(self, tag, image, step):
        self.images[tag] = image

    def add_scalar(self, tag, value, step):
        self.scalars[tag] = value


@pytest.mark.parametrize('network', NETWORKS.values(), ids=NETWORKS.keys())
def test_training_step_updates_weights_with_rendered_losses(scenes, tmp_path, network):
    model = build_model(model_options(tmp_path, network))
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data(batch(scenes))
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_pix', 'l_grad'}
    assert all(math.isfinite(v) and v > 0 for v in model.log_dict.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))


@pytest.mark.parametrize('network', NETWORKS.values(), ids=NETWORKS.keys())
def test_validation_reports_finite_metrics_and_writes_images(scenes, tmp_path, network):
    model = build_model(model_options(tmp_path, network))
    loader = DataLoader(dataset(scenes, 'val', dimming_factors=[20, 50]), batch_size=1)
    tb = RecordingTensorBoard()
    model.validation(loader, current_iter=3, tb_logger=tb, save_img=True)
    assert len(model.image_metrics) == 4
    for row in model.image_metrics:
        assert 0 < row['psnr'] < 60 and 0 < row['psnr_input'] < 60 and -1 <= row['ssim'] <= 1
    assert set(model.metric_results) == {'psnr', 'ssim'}
    assert tb.scalars and len(tb.images) == 2
    assert next(iter(tb.images.values())).shape == (3, 32, 96)  # input | result | target
    saved = sorted(p.name for p in (tmp_path / 'experiments' / 'unit' / 'visualization').rglob('*.png'))
    assert len(saved) == 4 and all(name.endswith('_3.png') for name in saved)


def test_tiny_deepfnf_overfits_one_batch(scenes, tmp_path):
    torch.manual_seed(0)
    model = build_model(model_options(tmp_path, TINY_DEEPFNF))
    model.feed_data(batch(scenes))
    losses = []
    for step in range(1, 301):
        model.optimize_parameters(step)
        losses.append(model.log_dict['l_pix'])
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first / 10, f'pixel loss fell only from {first:.4g} to {last:.4g} in 300 steps'


def test_bf16_autocast_training_step_is_finite(scenes, tmp_path):
    model = build_model(model_options(tmp_path, TINY_DEEPFNF, mixed_precision='bf16'))
    model.feed_data(batch(scenes))
    model.optimize_parameters(1)
    assert all(torch.isfinite(torch.tensor(v)) for v in model.log_dict.values())
    assert all(torch.isfinite(p).all() for p in model.net_g.parameters())


def test_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ValueError, match='train.mixed_precision must be auto, bf16, fp16 or ~'):
        build_model(model_options(tmp_path, TINY_DEEPFNF, mixed_precision='fp8'))


def test_parameter_free_reference_cannot_be_trained(tmp_path):
    with pytest.raises(ValueError, match='no trainable parameters'):
        build_model(model_options(tmp_path, {'type': 'JointBilateralFnF'}))


def test_ema_starts_from_params_ema_of_the_pretrained_checkpoint_as_srmodel(scenes, tmp_path):
    source = build_model(model_options(tmp_path, TINY_DEEPFNF))
    weights = {name: torch.full_like(value, 0.25) for name, value in source.net_g.state_dict().items()}
    ema = {name: torch.full_like(value, -0.5) for name, value in weights.items()}
    torch.save({'params': weights, 'params_ema': ema}, tmp_path / 'both.pth')
    torch.save({'params': weights}, tmp_path / 'plain.pth')
    for checkpoint, expected in (('both.pth', -0.5), ('plain.pth', 0.25)):
        opt = model_options(tmp_path, TINY_DEEPFNF, ema_decay=0.999)
        opt['path']['pretrain_network_g'] = str(tmp_path / checkpoint)
        model = build_model(opt)
        assert all(torch.all(p == 0.25) for p in model.net_g.state_dict().values())
        assert all(torch.all(p == expected) for p in model.net_g_ema.state_dict().values()), checkpoint


def _is_channels_last(net):
    weights = [p for p in net.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]
    return all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in weights)


@pytest.mark.parametrize('precision', [None, 'bf16'])
def test_channels_last_training_step_equals_the_nchw_one(scenes, tmp_path, precision):
    data = batch(scenes)
    results = {}
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = build_model(model_options(tmp_path, TINY_DEEPFNF, channels_last=channels_last,
                                          mixed_precision=precision, ema_decay=0.5))
        parameters = list(model.net_g.parameters())
        model.feed_data(data)
        model.optimize_parameters(1)
        assert _is_channels_last(model.net_g) == channels_last and _is_channels_last(model.net_g_ema) == channels_last
        assert all(a is b for a, b in zip(parameters, model.net_g.parameters()))  # the optimizer's parameters
        results[channels_last] = (model.log_dict, [p.detach().contiguous() for p in model.net_g.parameters()])
    # Same arithmetic in another order: fp32 sums agree closely, bf16 ones within bf16 rounding.
    tolerance = 1e-4 if precision is None else 2e-2
    for key, value in results[False][0].items():
        assert results[True][0][key] == pytest.approx(value, rel=tolerance)
    for nchw, channels_last in zip(results[False][1], results[True][1]):
        torch.testing.assert_close(channels_last, nchw, rtol=tolerance, atol=tolerance * 1e-2)


def test_validation_in_another_memory_format_than_training_restores_the_training_one(scenes, tmp_path):
    loader = DataLoader(dataset(scenes, 'val'), batch_size=1)
    metrics = {}
    for train_layout, val_layout in ((False, False), (True, False), (False, True)):
        torch.manual_seed(0)
        opt = model_options(tmp_path, TINY_DEEPFNF, channels_last=train_layout)
        opt['val']['channels_last'] = val_layout
        model = build_model(opt)
        model.validation(loader, current_iter=1, tb_logger=None, save_img=False)
        assert _is_channels_last(model.net_g) == train_layout
        metrics[train_layout, val_layout] = model.metric_results['psnr']
    assert metrics[True, False] == pytest.approx(metrics[False, False], abs=1e-4)
    assert metrics[False, True] == pytest.approx(metrics[False, False], abs=1e-4)


def test_testing_model_uses_the_validation_memory_format(tmp_path):
    opt = model_options(tmp_path, TINY_DEEPFNF, is_train=False)
    opt['val']['channels_last'] = True
    assert _is_channels_last(build_model(opt).net_g)


@pytest.mark.parametrize('value', ['yes', 1])
def test_channels_last_must_be_a_boolean(tmp_path, value):
    with pytest.raises(ConfigError, match='train.channels_last must be auto, true or false'):
        build_model(model_options(tmp_path, TINY_DEEPFNF, channels_last=value))


@pytest.mark.parametrize('native', [False, True])
def test_auto_resolves_by_the_cpu_and_logs_the_choice(tmp_path, monkeypatch, basicsr_log, native):
    from fnf_basicsr.utils import hardware
    reason = 'CPU with native bf16: AVX512-BF16' if native else 'CPU without native bf16: AVX2'
    monkeypatch.setattr(hardware, 'cpu_native_bf16', lambda: (native, reason))
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'AVX512' if native else 'AVX2')
    opt = model_options(tmp_path, TINY_DEEPFNF, mixed_precision='auto', channels_last='auto')
    opt['val'].update(mixed_precision='auto', channels_last='auto')
    model = build_model(opt)
    precision = 'bf16' if native else 'fp32'
    for phase in ('train', 'val'):
        assert model.runtime(phase)[0].value == precision and model.channels_last(phase) is native
        assert f'{phase}: precision: {precision} ({reason})' in basicsr_log.text
    assert _is_channels_last(model.net_g) is native
    assert model.step_watch.precision == precision


def test_validation_reports_each_dimming_level_and_their_mean(scenes, tmp_path, basicsr_log):
    model = build_model(model_options(tmp_path, TINY_DEEPFNF))
    loader = DataLoader(dataset(scenes, 'val', dimming_factors=[100, 12.5]), batch_size=1)
    tb = RecordingTensorBoard()
    model.validation(loader, current_iter=3, tb_logger=tb, save_img=False)
    assert list(model.level_metrics) == [100.0, 12.5]
    for metric in ('psnr', 'ssim'):
        levels = [model.level_metrics[level][metric] for level in (100.0, 12.5)]
        assert model.metric_results[metric] == pytest.approx(sum(levels) / 2)
        for level, value in zip(('100x', '12.5x'), levels):
            assert tb.scalars[f'metrics/synthetic_val/{metric}_{level}'] == pytest.approx(value)
    # The rows were grouped by their own level: the noisy input is cleaner at 12.5x than at 100x.
    inputs = {level: [r['psnr_input'] for r in model.image_metrics if r['dimming'] == level] for level in (100, 12.5)}
    assert min(inputs[12.5]) > max(inputs[100])
    assert 'Validation synthetic_val per dimming: 100x psnr:' in basicsr_log.text


def test_one_dimming_level_logs_no_per_level_line(scenes, tmp_path, basicsr_log):
    model = build_model(model_options(tmp_path, TINY_DEEPFNF))
    model.validation(DataLoader(dataset(scenes, 'val'), batch_size=1), 3, tb_logger=None, save_img=False)
    assert list(model.level_metrics) == [20.0] and 'per dimming' not in basicsr_log.text


def test_log_per_sample_balance_weighs_every_sample_alike(scenes, tmp_path):
    model = build_model(model_options(tmp_path, TINY_DEEPFNF, loss_balance='log_per_sample'))
    gt = torch.rand(2, 3, 16, 16)
    output = gt + torch.stack([torch.full((3, 16, 16), 0.01), torch.full((3, 16, 16), 0.3)]) * torch.randn(2, 3, 16, 16)
    losses, total = model.total_loss(output, gt)
    per_sample = [sum(model.compute_losses(output[i:i + 1], gt[i:i + 1]).values()) for i in range(2)]
    assert total.item() == pytest.approx(float(torch.log(torch.stack(per_sample)).mean()), rel=1e-6)
    plain, plain_total = build_model(model_options(tmp_path, TINY_DEEPFNF)).total_loss(output, gt)
    for key in ('l_pix', 'l_grad'):  # the logged terms stay the batch means
        assert losses[key].item() == pytest.approx(plain[key].item(), rel=1e-5)
    assert plain_total.item() == pytest.approx(sum(v.item() for v in plain.values()), rel=1e-6)
    # With the MSE alone: how the total moves when each sample's error grows by the same fraction (the
    # derivative along the sample's own error). The plain sum moves with the noisy sample only (its error is
    # 30x larger); the log balance moves alike for both, as a mean PSNR does.
    error = output - gt
    for balance in ('none', 'log_per_sample'):
        out = output.clone().requires_grad_(True)
        opt = model_options(tmp_path, TINY_DEEPFNF, loss_balance=balance, gradient_opt=None)
        build_model(opt).total_loss(out, gt)[1].backward()
        clean, noisy = ((out.grad[i] * error[i]).sum().item() for i in (0, 1))
        if balance == 'none':
            assert clean < noisy / 100
        else:
            assert clean == pytest.approx(noisy, rel=1e-4) and clean == pytest.approx(1.0, rel=1e-4)


def test_unknown_loss_balance_is_refused(scenes, tmp_path):
    model = build_model(model_options(tmp_path, TINY_DEEPFNF, loss_balance='sqrt'))
    with pytest.raises(ConfigError, match='train.loss_balance must be none or log_per_sample'):
        model.total_loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
