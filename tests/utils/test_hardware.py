"""`auto` precision and memory format: resolved from what the device runs natively, with the probes mocked
both ways, the oneDNN / ATen environment limits honoured for real, and explicit values winning."""
import os
import subprocess
import sys

import pytest
import torch

from fnf_basicsr.errors import ConfigError
from fnf_basicsr.utils import hardware
from fnf_basicsr.utils.hardware import resolve_channels_last, resolve_precision


@pytest.fixture
def cpu(monkeypatch):
    """A CPU whose probes the test sets: ``cpu(capability, avx512_bf16, amx, onednn_bf16)``."""
    def configure(capability='AVX512', avx512_bf16=True, amx=False, onednn_bf16=True):
        monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: capability)
        monkeypatch.setattr(torch.cpu, '_is_avx512_bf16_supported', lambda: avx512_bf16, raising=False)
        monkeypatch.setattr(torch.cpu, '_is_amx_tile_supported', lambda: amx, raising=False)
        monkeypatch.setattr(hardware, '_onednn_bf16_probe', lambda: onednn_bf16)
    monkeypatch.delenv('ONEDNN_MAX_CPU_ISA', raising=False)
    monkeypatch.delenv('DNNL_MAX_CPU_ISA', raising=False)
    return configure


def test_auto_is_float32_without_native_bf16(cpu):
    cpu(capability='AVX2', avx512_bf16=False, onednn_bf16=False)
    choice = resolve_precision('auto', 'cpu')
    assert choice.value == 'fp32'
    assert choice.describe('precision') == 'precision: fp32 (CPU without native bf16: AVX2)'


def test_auto_is_float32_on_avx512_without_the_bf16_extension(cpu):
    # oneDNN reports bf16 "supported" on plain AVX-512 (emulated): the CPU flag decides.
    cpu(capability='AVX512', avx512_bf16=False, onednn_bf16=True)
    assert resolve_precision('auto', 'cpu').value == 'fp32'


@pytest.mark.parametrize('avx512_bf16, amx, name', [(True, False, 'AVX512-BF16'), (False, True, 'AMX')])
def test_auto_is_bf16_where_the_cpu_runs_it_natively(cpu, avx512_bf16, amx, name):
    cpu(avx512_bf16=avx512_bf16, amx=amx)
    choice = resolve_precision('auto', 'cpu')
    assert (choice.value, choice.reason) == ('bf16', f'CPU with native bf16: {name}')


@pytest.mark.parametrize('isa', ['AVX2', 'avx512_core', 'AVX512_CORE_VNNI'])
def test_a_onednn_isa_limit_below_bf16_gives_float32(cpu, monkeypatch, isa):
    cpu()
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', isa)
    choice = resolve_precision('auto', 'cpu')
    assert choice.value == 'fp32' and 'ONEDNN_MAX_CPU_ISA' in choice.reason


def test_a_onednn_isa_limit_at_or_above_bf16_keeps_bf16(cpu, monkeypatch):
    cpu()
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX512_CORE_AMX')
    assert resolve_precision('auto', 'cpu').value == 'bf16'


def test_aten_kernels_limited_to_avx2_give_float32(cpu):
    cpu(capability='AVX2')  # ATEN_CPU_CAPABILITY=avx2 on a bf16 CPU
    choice = resolve_precision('auto', 'cpu')
    assert choice.value == 'fp32' and 'ATEN_CPU_CAPABILITY' in choice.reason


def test_the_environment_limits_are_honoured_by_the_real_probes():
    """On any x86-64 CPU, both variables set as the README says give float32 and NCHW."""
    code = ('from fnf_basicsr.utils.hardware import resolve_precision, resolve_channels_last\n'
            'p = resolve_precision("auto", "cpu"); c = resolve_channels_last("auto", p.value, "cpu")\n'
            'print(p.value, c.value)')
    env = {**os.environ, 'ONEDNN_MAX_CPU_ISA': 'AVX2', 'ATEN_CPU_CAPABILITY': 'avx2'}
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ['fp32', 'False']


def test_explicit_precision_wins_and_warns_when_emulated(cpu):
    cpu(capability='AVX2', avx512_bf16=False, onednn_bf16=False)
    choice = resolve_precision('bf16', 'cpu')
    assert choice.value == 'bf16' and choice.slow and 'use auto' in choice.reason
    cpu()
    assert not resolve_precision('bf16', 'cpu').slow
    for off in (None, False, 'fp32'):
        assert resolve_precision(off, 'cpu').value == 'fp32'


@pytest.mark.parametrize('value', ['fp8', 'BF16', 1, True])
def test_unknown_precision_is_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match='val.mixed_precision must be auto, bf16, fp16 or ~'):
        resolve_precision(value, 'cpu', 'val.mixed_precision')


def test_cuda_auto_follows_native_bf16(monkeypatch):
    for native, expected in ((True, 'bf16'), (False, 'fp32')):
        monkeypatch.setattr(hardware, 'cuda_native_bf16', lambda device, native=native: (native, 'GPU X'))
        assert resolve_precision('auto', 'cuda').value == expected


def test_cuda_probe_ignores_emulated_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device: 'Tesla V100')
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device: (7, 0))
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda including_emulation=True: including_emulation)
    native, reason = hardware.cuda_native_bf16(torch.device('cuda'))
    assert not native and reason == 'Tesla V100 (sm_70) without native bf16'


@pytest.mark.parametrize('capability, precision, expected', [
    ('AVX512', 'fp32', True), ('AVX512', 'bf16', True), ('AVX2', 'fp32', False), ('AVX2', 'bf16', False)])
def test_channels_last_auto_on_cpu_follows_the_kernel_family(cpu, capability, precision, expected):
    cpu(capability=capability)
    choice = resolve_channels_last('auto', precision, 'cpu')
    assert choice.value is expected and capability in choice.reason


@pytest.mark.parametrize('precision, expected', [('bf16', True), ('fp16', True), ('fp32', False)])
def test_channels_last_auto_on_cuda_follows_the_precision(precision, expected):
    assert resolve_channels_last('auto', precision, 'cuda').value is expected


def test_channels_last_explicit_wins_and_bad_values_are_refused(cpu):
    cpu(capability='AVX2')
    assert resolve_channels_last(True, 'fp32', 'cpu').value is True
    cpu(capability='AVX512')
    assert resolve_channels_last(False, 'bf16', 'cpu').value is False
    with pytest.raises(ConfigError, match='train.channels_last must be auto, true or false'):
        resolve_channels_last('yes', 'fp32', 'cpu', 'train.channels_last')


def test_autocast_runs_the_resolved_precision():
    layer = torch.nn.Linear(4, 4)
    with hardware.autocast('bf16', 'cpu'):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with hardware.autocast('fp32', 'cpu'):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
