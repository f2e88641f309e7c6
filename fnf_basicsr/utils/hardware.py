"""What the hardware runs natively, and what ``auto`` precision and memory format resolve to.

``mixed_precision: auto`` picks bf16 autocast only where the device computes bf16 natively, else float32:

* CPU: the cores have AVX512-BF16 or AMX, oneDNN may use them (``ONEDNN_MAX_CPU_ISA``, when set, is at
  least ``AVX512_CORE_BF16``) and ATen's vector kernels are AVX-512 (``ATEN_CPU_CAPABILITY`` not lowered).
  Without native bf16, oneDNN emulates it and a training step is many times slower than float32 (docs/speed.md).
* CUDA: the GPU computes bf16 natively (Ampere and later; emulation on older GPUs does not count).

``channels_last: auto`` follows the measurements of ``scripts/profiling/profile_training.py``
(docs/speed.md): on a CPU whose ATen kernels are AVX-512 it is on (faster in float32 and in bf16 there); on AVX2
CPUs it is off (slower in float32 on an AVX2-only EPYC); on CUDA it is on with reduced precision (bf16 or
fp16), where tensor cores take NHWC, and off in float32.

Explicit values (``bf16``, ``fp16``, ``~``/``fp32``; ``true``/``false``) always win; an explicit bf16 on
a device without native bf16 is kept but warned about.
"""
from __future__ import annotations

import argparse
import inspect
import os
import platform
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from fnf_basicsr.errors import ConfigError

AUTO = 'auto'
# Autocast dtypes by option value; fp32 (also written ~ or false) is no autocast.
AUTOCAST_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
FP32_SPELLINGS = (None, False, 'fp32', 'none')
# oneDNN ISA ceilings below the first one with native bf16 instructions (AVX512_CORE_BF16).
ONEDNN_ISAS_WITHOUT_BF16 = ('SSE41', 'AVX', 'AVX2', 'AVX2_VNNI', 'AVX2_VNNI_2', 'AVX512_CORE',
                            'AVX512_CORE_VNNI')


@dataclass(frozen=True)
class Choice:
    """A resolved setting and why: ``value`` is 'bf16' / 'fp16' / 'fp32' or a bool (channels_last).

    Args:
        value: the setting.
        reason: why it was chosen, for the log.
        slow: an explicit choice the device emulates: worth a warning.

    Example:
        >>> Choice('fp32', 'set in the options').describe('precision')
        'precision: fp32 (set in the options)'
        >>> Choice(True, 'AVX512 CPU').describe('channels_last')
        'channels_last: on (AVX512 CPU)'
    """
    value: object
    reason: str
    slow: bool = False  # an explicit choice the device emulates: worth a warning

    def describe(self, name: str) -> str:
        """One log line, e.g. ``precision: fp32 (CPU without native bf16: AVX2)``.

        Args:
            name: the setting's name, first on the line.

        Returns:
            ``'<name>: <value> (<reason>)'``, a bool shown as on / off.
        """
        shown = {True: 'on', False: 'off'}.get(self.value, self.value) if isinstance(self.value, bool) \
            else self.value
        return f'{name}: {shown} ({self.reason})'


def cpu_native_bf16() -> tuple[bool, str]:
    """Whether this CPU, as torch and oneDNN are allowed to use it, computes bf16 natively; and why.

    Returns:
        The answer and a short reason naming the instruction set.

    Example:
        >>> native, reason = cpu_native_bf16()
        >>> isinstance(native, bool), 'bf16' in reason
        (True, True)
    """
    capability = torch.backends.cpu.get_cpu_capability()
    has_bf16 = _cpu_flag('_is_avx512_bf16_supported')
    has_amx = _cpu_flag('_is_amx_tile_supported')
    if not (has_bf16 or has_amx):
        return False, f'CPU without native bf16: {capability}'
    onednn_isa = os.environ.get('ONEDNN_MAX_CPU_ISA', os.environ.get('DNNL_MAX_CPU_ISA', '')).upper()
    if onednn_isa in ONEDNN_ISAS_WITHOUT_BF16 or not _onednn_bf16_probe():
        return False, f'oneDNN limited to {onednn_isa or "an ISA"} without native bf16 (ONEDNN_MAX_CPU_ISA)'
    if not capability.startswith('AVX512'):
        return False, f'ATen kernels limited to {capability} (ATEN_CPU_CAPABILITY)'
    return True, f'CPU with native bf16: {"AMX" if has_amx else "AVX512-BF16"}'


def _onednn_bf16_probe():
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # honours ONEDNN_MAX_CPU_ISA=AVX2, not AVX512_CORE


def _cpu_flag(name):
    probe = getattr(torch.cpu, name, None)  # private probes of torch.cpu; absent means unknown, i.e. no
    return bool(probe and probe())


def cuda_native_bf16(device: torch.device | str | int) -> tuple[bool, str]:
    """Whether the CUDA ``device`` computes bf16 natively (not emulated); and why.

    Args:
        device: a CUDA device.

    Returns:
        The answer and a short reason naming the GPU and its compute capability.

    Example:
        >>> if torch.cuda.is_available():  # e.g. (True, 'NVIDIA H200 (sm_90) with native bf16')
        ...     assert 'native bf16' in cuda_native_bf16(0)[1]
    """
    name = torch.cuda.get_device_name(device)
    major, minor = torch.cuda.get_device_capability(device)
    check = torch.cuda.is_bf16_supported
    native = check(including_emulation=False) if 'including_emulation' in inspect.signature(check).parameters \
        else major >= 8
    return bool(native), f'{name} (sm_{major}{minor}) {"with" if native else "without"} native bf16'


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """``cpu_native_bf16`` or ``cuda_native_bf16`` for ``device`` (a torch.device or its string).

    Args:
        device: where the network runs; other device types than CPU and CUDA get no native bf16.

    Returns:
        The answer and a short reason.

    Example:
        >>> native_bf16('meta')
        (False, 'meta device: no native bf16 assumed')
    """
    device = torch.device(device)
    if device.type == 'cuda':
        return cuda_native_bf16(device)
    if device.type == 'cpu':
        return cpu_native_bf16()
    return False, f'{device.type} device: no native bf16 assumed'


def resolve_precision(value: str | bool | None, device: torch.device | str, key: str = 'mixed_precision') -> Choice:
    """The autocast precision for ``value`` of option ``key`` on ``device``.

    Args:
        value: ``'auto'``, ``'bf16'``, ``'fp16'``, or ``None`` / ``False`` / ``'fp32'`` for no autocast.
        device: where the network runs.
        key: the option's name, for errors.

    Returns:
        ``value`` 'bf16', 'fp16' or 'fp32', with the reason.

    Raises:
        ConfigError: ``value`` is none of the above.

    Example:
        >>> resolve_precision(None, 'cpu').value
        'fp32'
    """
    if value in FP32_SPELLINGS:
        return Choice('fp32', 'set in the options')
    if value == AUTO:
        native, reason = native_bf16(device)
        return Choice('bf16' if native else 'fp32', reason)
    if value == 'bf16':
        native, reason = native_bf16(device)
        if not native:
            return Choice(value, f'set in the options; {reason}: expect slow steps, use auto', slow=True)
    if value in AUTOCAST_DTYPES:
        return Choice(value, 'set in the options')
    raise ConfigError(f"{key} must be auto, bf16, fp16 or ~ (float32), got {value!r}")


def resolve_channels_last(value: str | bool, precision: str, device: torch.device | str,
                          key: str = 'channels_last') -> Choice:
    """Whether to run in channels_last for ``value`` of option ``key``, given the resolved ``precision``.

    Args:
        value: ``'auto'``, ``True`` or ``False``.
        precision: the resolved precision ('bf16', 'fp16' or 'fp32') on the same device.
        device: where the network runs.
        key: the option's name, for errors.

    Returns:
        A bool with the reason.

    Raises:
        ConfigError: ``value`` is neither auto nor a boolean.

    Example:
        >>> resolve_channels_last(False, 'fp32', 'cpu').value
        False
    """
    if isinstance(value, bool):
        return Choice(value, 'set in the options')
    if value != AUTO:
        raise ConfigError(f'{key} must be auto, true or false, got {value!r}')
    if torch.device(device).type == 'cuda':
        reduced = precision in AUTOCAST_DTYPES
        return Choice(reduced, f'{precision} on CUDA: {"NHWC suits tensor cores" if reduced else "float32 keeps NCHW"}')
    capability = torch.backends.cpu.get_cpu_capability()
    faster = capability.startswith('AVX512')
    return Choice(faster, f'{capability} CPU: channels_last measured {"faster" if faster else "slower"}')


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """The autocast context for a resolved ``precision`` ('fp32' disables it) on ``device``.

    Args:
        precision: 'bf16', 'fp16' or 'fp32' (the value of :func:`resolve_precision`).
        device: where the network runs.

    Returns:
        ``torch.autocast`` with the precision's dtype, or a context that does nothing for 'fp32'.

    Example:
        >>> with autocast('bf16', 'cpu'):
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.bfloat16
    """
    if precision not in AUTOCAST_DTYPES:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=AUTOCAST_DTYPES[precision])


def cpu_model_name() -> str:
    """The CPU's model name as the OS reports it (``/proc/cpuinfo`` on Linux), else ``platform.processor()``.

    Returns:
        The name, or ``'unknown CPU'``.

    Example:
        >>> isinstance(cpu_model_name(), str)
        True
    """
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def describe_cpu() -> str:
    """The CPU as timings should name it: model, ATen kernel family, native bf16 and threads.

    Returns:
        One line, e.g. ``'AMD EPYC 9B14, AVX512 kernels, native bf16, threads: 2'``.

    Example:
        >>> 'threads:' in describe_cpu()
        True
    """
    native, reason = cpu_native_bf16()
    bf16 = 'native bf16' if native else 'no native bf16'
    return (f'{cpu_model_name()}, {torch.backends.cpu.get_cpu_capability()} kernels, {bf16}, '
            f'threads: {torch.get_num_threads()}')


INFERENCE_PRECISIONS = ('fp32', 'bf16', AUTO)
LAYOUT_SPELLINGS = {'on': True, 'off': False, AUTO: AUTO}


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--channels-last`` of the inference commands (fnf-denoise, fnf-benchmark).

    Args:
        parser: the command's parser; the two options are added to it.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_inference_arguments(parser)
        >>> parser.parse_args(['--channels-last'])
        Namespace(precision='fp32', channels_last='on')
    """
    parser.add_argument('--precision', choices=INFERENCE_PRECISIONS, default='fp32',
                        help='fp32 (default: the same numbers on every machine), bf16 autocast, or auto: bf16 where '
                        'the device computes it natively. The kernel filter stays float32.')
    parser.add_argument('--channels-last', nargs='?', choices=sorted(LAYOUT_SPELLINGS), const='on', default=AUTO,
                        help='weights and inputs in channels_last memory format: on, off, or auto (default: by '
                        'device, as the option files); the result is the same up to float rounding.')


def resolve_inference(args: argparse.Namespace, device: torch.device | str) -> tuple[Choice, Choice]:
    """The (precision, channels_last) Choices of parsed ``args`` on ``device``; prints them once.

    Args:
        args: parsed arguments of a parser given :func:`add_inference_arguments`.
        device: where the network runs.

    Returns:
        The precision and the channels_last choice.

    Raises:
        ConfigError: a value neither resolver accepts.

    Example:
        >>> precision, layout = resolve_inference(argparse.Namespace(precision='fp32', channels_last='off'), 'cpu')
        precision: fp32 (set in the options), channels_last: off (set in the options)
        >>> precision.value, layout.value
        ('fp32', False)
    """
    precision = resolve_precision(args.precision, device, '--precision')
    layout = resolve_channels_last(LAYOUT_SPELLINGS[args.channels_last], precision.value, device, '--channels-last')
    print(f'{precision.describe("precision")}, {layout.describe("channels_last")}')
    return precision, layout


def set_channels_last(net, channels_last):
    """Convert ``net``'s 4-D parameters and buffers in place to channels_last (or back); returns ``net``.

    Parameters stay the same objects (only their data is re-laid), so an optimizer built on them keeps
    working; converting to the layout they already have copies nothing.
    """
    return net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def as_channels_last(tensor, channels_last):
    """``tensor`` (B, C, H, W) in channels_last memory format if asked, else as it is."""
    return tensor.contiguous(memory_format=torch.channels_last) if channels_last else tensor
