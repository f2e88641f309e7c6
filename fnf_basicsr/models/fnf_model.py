"""FnFModel: trains and validates any registered restorer on flash/no-flash batches.

Everything the loss and the metrics see is rendered to sRGB first, with the per-sample gain and
color transform of the batch (paper Sec. 3.3): the network works on linear camera RGB, people
look at rendered pictures.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite
from basicsr.utils.registry import MODEL_REGISTRY
from tqdm import tqdm

from fnf_basicsr.archs.capabilities import capability
from fnf_basicsr.archs.contracts import check_network, estimate_from_output
from fnf_basicsr.data.input_layout import NOFLASH_FRAME, image_channels
from fnf_basicsr.data.levels import level_label, level_of, level_tag, ordered_levels
from fnf_basicsr.errors import ConfigError
from fnf_basicsr.metrics import to_metric_image, to_uint8_bgr
from fnf_basicsr.utils import hardware
from fnf_basicsr.utils.hardware import as_channels_last, set_channels_last
from fnf_basicsr.utils.rendering import render_srgb
from fnf_basicsr.utils.step_watch import StepTimeWatch

DEFAULT_PIXEL_LOSS = {'type': 'MSELoss', 'loss_weight': 1.0, 'reduction': 'mean'}


@MODEL_REGISTRY.register()
class FnFModel(SRModel):
    """BasicSR model for flash/no-flash denoising with losses and metrics on rendered sRGB.

    Batches come from ``FlashNoFlashDataset``: ``lq`` (network input), ``gt`` (linear target),
    ``gain`` and ``color_matrix`` (rendering). ``network_g`` is any registered network mapping
    ``lq`` to a linear image, ours or BasicSR's own; a network returning more than 3 channels is
    read through :func:`estimate_from_output`.

    Options beyond SRModel's:
        train.pixel_opt: loss on rendered images (default MSELoss, the paper's L2).
        train.gradient_opt: e.g. ``{type: GradientL1Loss, loss_weight: 1.0}`` (the paper's eta term).
        train.perceptual_opt: optional, as in SRModel, on rendered images.
        train.mixed_precision / val.mixed_precision: ``auto`` (bf16 autocast where the device computes bf16
            natively, else float32; :mod:`fnf_basicsr.utils.hardware`), ``bf16``, ``fp16`` or ``~`` (default).
        train.channels_last / val.channels_last: ``auto`` (by device, :mod:`fnf_basicsr.utils.hardware`) or
            whether the network's weights and its input are in
            ``torch.channels_last`` memory format while training / validating (default false). The
            network is converted before BasicSR wraps it (DDP), and back and forth around a
            validation whose format differs from training's; the optimizer keeps the same parameters.
        train.loss_balance: ``none`` (default, the paper) or ``log_per_sample`` (:meth:`total_loss`).
        val.tb_images: how many rendered validation images to send to TensorBoard (default 2).

    Args:
        opt: BasicSR's parsed options.

    Example:
        >>> opt = {'is_train': False, 'num_gpu': 0, 'dist': False, 'path': {}, 'val': {},
        ...        'network_g': {'type': 'KPN', 'kernel_size': 3, 'width': 0.0625}}
        >>> model = FnFModel(opt)
        >>> model.feed_data({'lq': torch.rand(1, 12, 16, 16), 'gain': torch.tensor([2.0]),
        ...                  'color_matrix': torch.eye(3)[None], 'gt': torch.rand(1, 3, 16, 16)})
        >>> model.test()
        >>> {name: tuple(image.shape) for name, image in model.get_current_visuals().items()}
        {'lq': (1, 3, 16, 16), 'result': (1, 3, 16, 16), 'gt': (1, 3, 16, 16)}
    """

    def runtime(self, phase: str) -> tuple[hardware.Choice, hardware.Choice]:
        """The resolved precision and memory format of ``phase`` ('train' or 'val'), logged once each.

        Args:
            phase: ``'train'`` or ``'val'``.

        Returns:
            ``(precision, channels_last)`` choices (:mod:`fnf_basicsr.utils.hardware`), each with its
            ``value`` and the reason for it.
        """
        resolved = self.__dict__.setdefault('_runtime', {})  # model_to_device asks before __init__ returns
        if phase not in resolved:
            options = self.opt.get(phase) or {}
            precision = hardware.resolve_precision(options.get('mixed_precision'), self.device,
                                                   f'{phase}.mixed_precision')
            layout = hardware.resolve_channels_last(options.get('channels_last', False), precision.value, self.device,
                                                    f'{phase}.channels_last')
            resolved[phase] = precision, layout
            log = get_root_logger().warning if precision.slow else get_root_logger().info
            log(f'{phase}: {precision.describe("precision")}, {layout.describe("channels_last")}')
        return resolved[phase]

    def channels_last(self, phase: str) -> bool:
        """Whether ``phase`` ('train' or 'val') runs the network in channels_last memory format.

        Args:
            phase: ``'train'`` or ``'val'``.

        Returns:
            The resolved ``channels_last`` option of the phase.
        """
        return self.runtime(phase)[1].value

    def _phase(self):
        return 'train' if self.opt['is_train'] else 'val'

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        """Check ``net`` against the network contract, set its memory format, and let BasicSR place (and wrap) it.

        Args:
            net: the network BasicSR built.

        Returns:
            The network on the model's device (wrapped in DDP when distributed).

        Raises:
            ConfigError: the network does not meet the contract of what it declares.
        """
        check_network(net)  # every network BasicSR builds for this model passes here first (train and test)
        # Before BasicSR's (DDP) wrapper: DDP's gradient buckets follow the parameters' layout.
        return super().model_to_device(set_channels_last(net, self.channels_last(self._phase())))

    def init_training_settings(self) -> None:
        """Build the EMA copy, the losses, the gradient scaler, the optimizer and the schedulers.

        Raises:
            ValueError: the network has nothing to train (``trainable = False``).
        """
        if not capability(self.get_bare_model(self.net_g), 'trainable'):
            raise ValueError(f"network_g {self.opt['network_g']['type']} has no trainable parameters; "
                             'use it with `basicsr test` or fnf-benchmark, not `basicsr train`.')
        self.net_g.train()
        train_opt = self.opt['train']
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            self._build_ema()
        self.cri_pix = build_loss(train_opt.get('pixel_opt') or DEFAULT_PIXEL_LOSS).to(self.device)
        self.cri_grad = build_loss(train_opt['gradient_opt']).to(self.device) if train_opt.get('gradient_opt') else None
        perceptual = train_opt.get('perceptual_opt')
        self.cri_perceptual = build_loss(perceptual).to(self.device) if perceptual else None
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=self.runtime('train')[0].value == 'fp16')
        self.step_watch = StepTimeWatch(self.device, self.runtime('train')[0].value, get_root_logger().warning)
        self.runtime('val')  # logged at start, beside train's
        self.setup_optimizers()
        self.setup_schedulers()

    def _build_ema(self):
        """As SRModel: the EMA copy starts from ``params_ema`` of ``pretrain_network_g`` (``params`` when the
        checkpoint has none, BasicSR's fallback), else from the freshly built network."""
        from basicsr.archs import build_network
        get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
        self.net_g_ema = set_channels_last(build_network(self.opt['network_g']).to(self.device),
                                           self.channels_last('train'))
        load_path = self.opt['path'].get('pretrain_network_g')
        if load_path is not None:
            self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
        else:
            self.model_ema(0)
        self.net_g_ema.eval()

    def autocast(self, phase: str) -> AbstractContextManager:
        """The autocast context of ``phase``'s precision (a no-op in float32).

        Args:
            phase: ``'train'`` or ``'val'``.

        Returns:
            A context manager.
        """
        return hardware.autocast(self.runtime(phase)[0].value, self.device)

    def feed_data(self, data: dict[str, Any]) -> None:
        """Keep a batch on the model's device: ``lq``, ``gain``, ``color_matrix``, and ``encoded``, ``gt`` if given.

        Args:
            data: a batch of ``FlashNoFlashDataset`` samples.
        """
        self.lq = data['lq'].to(self.device)
        self.gain = data['gain'].to(self.device)
        self.color_matrix = data['color_matrix'].to(self.device)
        self.encoded = data['encoded'].to(self.device) if 'encoded' in data else None
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)

    def render(self, linear: torch.Tensor) -> torch.Tensor:
        """Render linear images of the current batch to sRGB with its gains and color matrices (not clipped).

        Args:
            linear: (B, 3, H, W) linear camera RGB.

        Returns:
            (B, 3, H, W) sRGB.
        """
        return render_srgb(linear, self.gain, self.color_matrix, self.encoded)

    def compute_losses(self, output_srgb: torch.Tensor, gt_srgb: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """The configured loss terms on rendered images.

        Args:
            output_srgb: (B, 3, H, W) rendered output.
            gt_srgb: (B, 3, H, W) rendered target.

        Returns:
            ``l_pix``, and ``l_grad``, ``l_percep``, ``l_style`` where configured.
        """
        losses = OrderedDict(l_pix=self.cri_pix(output_srgb, gt_srgb))
        if self.cri_grad:
            losses['l_grad'] = self.cri_grad(output_srgb, gt_srgb)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(output_srgb, gt_srgb)
            losses.update({k: v for k, v in (('l_percep', l_percep), ('l_style', l_style)) if v is not None})
        return losses

    def total_loss(self, output_srgb: torch.Tensor,
                   gt_srgb: torch.Tensor) -> tuple[OrderedDict[str, torch.Tensor], torch.Tensor]:
        """The batch's loss terms (for the log) and the total to minimise, as ``train.loss_balance`` says.

        ``none`` (default, the paper): the sum of the terms over the whole batch. ``log_per_sample``: the
        batch mean of each sample's log total, so every sample's relative error counts alike (as a mean PSNR
        does) instead of the noisiest samples' absolute errors dominating the gradient.

        Args:
            output_srgb: (B, 3, H, W) rendered output.
            gt_srgb: (B, 3, H, W) rendered target.

        Returns:
            ``(terms, total)``: the terms of :meth:`compute_losses` (batch means) and the scalar to minimise.

        Raises:
            ConfigError: an unknown ``train.loss_balance``.

        Example:
            >>> opt = {'is_train': True, 'num_gpu': 0, 'dist': False, 'path': {}, 'val': {},
            ...        'network_g': {'type': 'KPN', 'kernel_size': 3, 'width': 0.0625},
            ...        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-4},
            ...                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}}}
            >>> model = FnFModel(opt)
            >>> terms, total = model.total_loss(torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5))
            >>> dict(terms), total
            ({'l_pix': tensor(0.2500)}, tensor(0.2500))
        """
        balance = self.opt['train'].get('loss_balance', 'none')
        if balance == 'none':
            losses = self.compute_losses(output_srgb, gt_srgb)
            return losses, sum(losses.values())
        if balance != 'log_per_sample':
            raise ConfigError(f"train.loss_balance must be none or log_per_sample, got {balance!r}")
        per_sample = [self.compute_losses(output_srgb[i:i + 1], gt_srgb[i:i + 1]) for i in range(len(output_srgb))]
        losses = OrderedDict((key, torch.stack([terms[key] for terms in per_sample]).mean()) for key in per_sample[0])
        return losses, torch.stack([torch.log(sum(terms.values())) for terms in per_sample]).mean()

    def optimize_parameters(self, current_iter: int) -> None:
        """One training step on the fed batch (timed by the step watch): forward, rendered losses, backward, update.

        Args:
            current_iter: BasicSR's iteration counter.
        """
        with self.step_watch:
            self._optimize(current_iter)

    def _optimize(self, current_iter):
        self.optimizer_g.zero_grad()
        with self.autocast('train'):
            self.output = estimate_from_output(self.net_g(as_channels_last(self.lq, self.channels_last('train'))))
        losses, l_total = self.total_loss(self.render(self.output), self.render(self.gt))
        self.grad_scaler.scale(l_total).backward()
        self.grad_scaler.step(self.optimizer_g)
        self.grad_scaler.update()
        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def test(self) -> None:
        """Run the network (the EMA copy if there is one) on the fed ``lq``; the estimate goes to ``self.output``."""
        # The bare network, never the DDP wrapper: BasicSR validates on rank 0 only, and a DDP forward
        # broadcasts buffers to ranks that are training (or gone) meanwhile.
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        channels_last = self.channels_last('val')
        set_channels_last(net, channels_last)
        with torch.no_grad(), self.autocast('val'):
            self.output = estimate_from_output(net(as_channels_last(self.lq, channels_last))).float()
        set_channels_last(net, self.channels_last(self._phase()))  # back to the training layout (a no-op if equal)
        net.train(was_training)

    def get_current_visuals(self) -> OrderedDict[str, torch.Tensor]:
        """Rendered, clipped sRGB: the denoised result, the noisy no-flash input, the target.

        Returns:
            ``lq``, ``result`` and (when fed) ``gt``, each (B, 3, H, W) on the CPU.
        """
        visuals = OrderedDict(lq=self.render(self.lq[:, image_channels(NOFLASH_FRAME)]).clamp(0, 1).cpu(),
                              result=self.render(self.output).clamp(0, 1).cpu())
        if hasattr(self, 'gt'):
            visuals['gt'] = self.render(self.gt).clamp(0, 1).cpu()
        return visuals

    def nondist_validation(self, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool) -> None:
        """Float PSNR/SSIM on rendered, clipped images; also those of the noisy input for reference.

        Per-image values are kept in ``self.image_metrics`` (list of dicts) for reports.

        Args:
            dataloader: the validation DataLoader (batch size 1).
            current_iter: BasicSR's iteration counter (names saved images and logged values).
            tb_logger: a TensorBoard ``SummaryWriter``, or None.
            save_img: write the rendered results to the visualization folder.
        """
        dataset_name = dataloader.dataset.opt['name']
        metric_opts = self.opt['val'].get('metrics') or {}
        if metric_opts:
            self._initialize_best_metric_results(dataset_name)
        self.image_metrics = []
        for index, val_data in enumerate(tqdm(dataloader, desc=f'Validate {dataset_name}', unit='image',
                                              disable=not self.opt['val'].get('pbar', False))):
            name = os.path.splitext(os.path.basename(val_data['key'][0]))[0]
            self.feed_data(val_data)
            self.test()
            visuals = self.get_current_visuals()
            row = {'name': name}
            if 'dimming' in val_data:
                row['dimming'] = float(val_data['dimming'][0])
            if float(val_data.get('awgn_sigma', [0.0])[0]) > 0:
                row['awgn_sigma'] = float(val_data['awgn_sigma'][0])
            if 'dimming' in row:
                row['level'] = level_of(row['dimming'], row.get('awgn_sigma', 0.0))
            if 'gt' in visuals:
                result, noisy, gt = (to_metric_image(visuals[k][0]) for k in ('result', 'lq', 'gt'))
                for metric, metric_opt in metric_opts.items():
                    row[metric] = calculate_metric({'img': result, 'img2': gt}, metric_opt)
                    row[f'{metric}_input'] = calculate_metric({'img': noisy, 'img2': gt}, metric_opt)
            self.image_metrics.append(row)
            if save_img:
                self._save_visuals(visuals, name, dataset_name, current_iter)
            if tb_logger and index < self.opt['val'].get('tb_images', 2):
                tb_logger.add_image(f'{dataset_name}/{name}', torch.cat(list(visuals.values()), dim=3)[0], current_iter)
            del self.lq, self.output
            self.__dict__.pop('gt', None)
        if metric_opts and self.image_metrics:
            self.metric_results = {m: float(np.mean([r[m] for r in self.image_metrics])) for m in metric_opts}
            for metric, value in self.metric_results.items():
                self._update_best_metric_result(dataset_name, metric, value, current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
            inputs = {m: float(np.mean([r[f'{m}_input'] for r in self.image_metrics])) for m in metric_opts}
            get_root_logger().info('Noisy input rendered the same way: '
                                   + ', '.join(f'{m}: {v:.4f}' for m, v in inputs.items()))
            self._log_metrics_per_level(current_iter, dataset_name, tb_logger, list(metric_opts))

    def _log_metrics_per_level(self, current_iter, dataset_name, tb_logger, metrics):
        """Each noise level's mean metrics (``self.level_metrics``: dimming factor, or sigma under srgb_awgn),
        logged and sent to TensorBoard when the validation set has more than one level; the overall metrics
        above are their mean (equal counts)."""
        rows = [r for r in self.image_metrics if 'level' in r]
        awgn = any('awgn_sigma' in r for r in rows)
        levels = ordered_levels([r['level'] for r in rows], awgn)
        self.level_metrics = {
            value: {m: float(np.mean([r[m] for r in rows if r['level'] == value])) for m in metrics}
            for value in levels}
        if len(levels) < 2:
            return
        get_root_logger().info(f'Validation {dataset_name} per {"sigma" if awgn else "dimming"}: ' + '; '.join(
            level_label(value, awgn) + ' ' + ', '.join(f'{m}: {v:.4f}' for m, v in values.items())
            for value, values in self.level_metrics.items()))
        for value, values in self.level_metrics.items() if tb_logger else ():
            for metric, metric_value in values.items():
                tb_logger.add_scalar(f'metrics/{dataset_name}/{metric}_{level_tag(value, awgn)}', metric_value,
                                     current_iter)

    def _save_visuals(self, visuals, name, dataset_name, current_iter):
        if self.opt['is_train']:
            path = os.path.join(self.opt['path']['visualization'], name, f'{name}_{current_iter}.png')
        else:
            suffix = self.opt['val'].get('suffix') or self.opt['name']
            path = os.path.join(self.opt['path']['visualization'], dataset_name, f'{name}_{suffix}.png')
        imwrite(to_uint8_bgr(visuals['result'][0]), path)
