"""Time and peak memory of our kernel-field filtering against the naive per-pixel-kernel form.

The naive form is what the released DeepFnF / BPN TensorFlow code does (``apply_filtering`` in
``utils/tf_utils.py``): form the per-pixel kernels (coefficients times basis, H*W*C*K*K numbers),
extract the image patches (as many), multiply and sum; it lives in :mod:`fnf_basicsr.ops.naive_filter`,
where ``tests/ops/test_kernel_filter.py`` takes it as the reference for equivalence.

The benchmarked operation is DeepFnF's two-scale filter (paper Eq. 4: a K x K term plus a
tent-prefiltered term dilated by d) unless ``--op`` says otherwise; ``--method`` picks how ours
computes it (direct grouped convolutions or FFT; default: what ``two_scale_filter`` picks). Passes: forward;
forward+backward with gradients for the predicted inputs (coefficients and basis, or kernels),
as in training, where the filtered image is the network input; forward+backward+image, which
differentiates the image too.

Every (device, pass, implementation) runs in a fresh subprocess, so that peak memory is that
configuration's alone: on CPU (Linux) the peak resident set size (VmHWM, reset through
/proc/self/clear_refs after a small warm-up call) minus the resident size before the first call,
on CUDA ``torch.cuda.max_memory_allocated`` minus the memory allocated before the first call.
Times are medians over ``--repeats`` runs after one untimed run.

Usage:
    python scripts/profiling/profile_filter.py                       # 448x448, J=90, K=15, d=4, CPU (+CUDA)
    python scripts/profiling/profile_filter.py --size 128 --repeats 3 --device cpu
"""
import argparse
import functools
import json
import statistics
import subprocess
import sys
import time

import torch

from fnf_basicsr.ops.kernel_filter import basis_filter, per_pixel_filter, two_scale_filter
from fnf_basicsr.ops.naive_filter import naive_basis_filter, naive_per_pixel_filter, naive_two_scale_filter


# --- benchmark ----------------------------------------------------------------------------------

OPS = {
    'two_scale': {'ours': two_scale_filter, 'naive': naive_two_scale_filter},
    'basis': {'ours': basis_filter, 'naive': naive_basis_filter},
    'per_pixel': {'ours': per_pixel_filter, 'naive': naive_per_pixel_filter},
}
# forward+backward: gradients for what a network predicts (coefficients, basis or kernels), as in
# training, where the filtered image is the network input; +image: for the image too.
PASSES = ('forward', 'forward+backward', 'forward+backward+image')
# Each configuration runs this module again in a fresh process (run_worker), so that its peak memory is its own.
WORKER_MODULE = 'fnf_basicsr.tools.profile_filter'


def make_inputs(op, size, num_basis, kernel_size, d, device):
    """Random inputs (batch 1, 3 channels) for ``op``; returns (tensors, extra call arguments)."""
    generator = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=generator).to(device)

    image = torch.rand(1, 3, size, size, generator=generator).to(device)
    if op == 'per_pixel':
        return [image, rand(1, kernel_size * kernel_size, size, size)], []
    coeffs = rand(1, num_basis, size, size)
    basis_shape = (1, num_basis, 3, kernel_size, kernel_size)
    if op == 'basis':
        return [image, coeffs, rand(*basis_shape)], []
    return [image, coeffs, rand(*basis_shape), rand(*basis_shape)], [d]


def run_worker(args):
    """Time one (op, implementation, pass) in this process and print a JSON result line."""
    device = torch.device(args.device)
    function = OPS[args.op][args.worker_impl]
    if args.op == 'two_scale' and args.worker_impl == 'ours':
        function = functools.partial(two_scale_filter, method=args.method)
    # A small call first, so that lazily loaded libraries and thread pools are not counted.
    warm_up_size = min(args.size, (args.K - 1) * args.d + 2)  # the smallest the naive reflect padding allows
    _call(function, *make_inputs(args.op, warm_up_size, args.J, args.K, args.d, device), args.worker_pass)
    tensors, extra = make_inputs(args.op, args.size, args.J, args.K, args.d, device)
    baseline = _memory_baseline(device)
    times = []
    for _ in range(1 + args.repeats):  # the first run warms up and is not timed
        _synchronize(device)
        start = time.perf_counter()
        _call(function, tensors, extra, args.worker_pass)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    print(json.dumps({'seconds': statistics.median(times[1:]), 'peak_mb': _peak_memory_mb(device, baseline)}))


def _call(function, tensors, extra, pass_name):
    """Run ``function`` once for ``pass_name``, differentiating the inputs that pass asks for."""
    backward = pass_name != 'forward'
    image, *predicted = tensors
    image.requires_grad_(pass_name == 'forward+backward+image')
    for tensor in predicted:
        tensor.requires_grad_(backward)
    for tensor in tensors:
        tensor.grad = None
    with torch.set_grad_enabled(backward):
        output = function(*tensors, *extra)
        if backward:
            output.backward(torch.ones_like(output))


def _synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _memory_baseline(device):
    """Reset the peak-memory counter; return the memory in use now (bytes on CUDA, KiB on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    with open('/proc/self/clear_refs', 'w') as clear_refs:  # Linux: resets VmHWM to the current VmRSS
        clear_refs.write('5')
    return _proc_status_kib('VmRSS')


def _peak_memory_mb(device, baseline):
    if device.type == 'cuda':
        return (torch.cuda.max_memory_allocated(device) - baseline) / 2 ** 20
    return (_proc_status_kib('VmHWM') - baseline) / 2 ** 10


def _proc_status_kib(field):
    """A memory field of /proc/self/status (Linux), in KiB."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}: the CPU memory measurement needs Linux.')


def measure(args, device, pass_name, impl):
    """Run one configuration in a fresh subprocess; returns its JSON result."""
    command = [sys.executable, '-m', WORKER_MODULE, '--op', args.op, '--size', str(args.size), '--J', str(args.J),
               '--K', str(args.K), '--d', str(args.d), '--repeats', str(args.repeats), '--device', device,
               '--threads', str(args.threads), '--method', args.method,
               '--worker-impl', impl, '--worker-pass', pass_name]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'benchmark worker {impl} / {pass_name} on {device} failed '
                           f'(exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--op', choices=sorted(OPS), default='two_scale',
                        help='two_scale: DeepFnF Eq. 4 (default); basis: one basis_filter at dilation 1; '
                             'per_pixel: the KPN filter with one K x K kernel per pixel')
    parser.add_argument('--size', type=int, default=448, help='image height and width (default 448, the training crop)')
    parser.add_argument('--J', type=int, default=90, help='number of basis kernels (default 90)')
    parser.add_argument('--K', type=int, default=15, help='kernel size, odd (default 15)')
    parser.add_argument('--d', type=int, default=4, help='dilation of the low-frequency kernels (default 4)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs after one warm-up; the median is reported')
    parser.add_argument('--device', choices=('cpu', 'cuda', 'all'), default='all',
                        help='cpu, cuda, or all (default): cpu plus cuda when available')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='CPU threads (default: all cores); 1 avoids OpenMP oversubscription on a shared machine')
    parser.add_argument('--method', choices=('auto', 'direct', 'fourier'), default='auto',
                        help="two_scale only: our filter's method (default auto: FFT from 96x96 pixels on)")
    parser.add_argument('--worker-impl', choices=('ours', 'naive'), help=argparse.SUPPRESS)
    parser.add_argument('--worker-pass', choices=PASSES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker_impl:
        run_worker(args)
        return
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    devices = ['cpu', 'cuda'] if args.device == 'all' else [args.device]
    devices = [dev for dev in devices if dev == 'cpu' or torch.cuda.is_available()]
    print(f'op={args.op} method={args.method} size={args.size}x{args.size} J={args.J} K={args.K} d={args.d} '
          f'batch=1 channels=3 repeats={args.repeats} torch={torch.__version__} cpu_threads={args.threads}\n')
    print('| device | pass | naive time (s) | ours time (s) | speed-up | naive peak (MB) | ours peak (MB) '
          '| memory ratio |')
    print('|---|---|---|---|---|---|---|---|')
    for device in devices:
        for pass_name in PASSES:
            naive = measure(args, device, pass_name, 'naive')
            ours = measure(args, device, pass_name, 'ours')
            print(f"| {device} | {pass_name} | {naive['seconds']:.3f} | {ours['seconds']:.3f} | "
                  f"{naive['seconds'] / ours['seconds']:.1f}x | {naive['peak_mb']:.0f} | {ours['peak_mb']:.0f} | "
                  f"{memory_ratio(naive['peak_mb'], ours['peak_mb'])} |", flush=True)


def memory_ratio(naive_mb, ours_mb, resolution_mb=1.0):
    """The peak-memory ratio, or 'n/a' when ours is below what the measurement resolves (page granularity
    and allocator caching make peaks under about 1 MB meaningless)."""
    return f'{naive_mb / ours_mb:.1f}x' if ours_mb >= resolution_mb else f'n/a (ours < {resolution_mb:g} MB)'


if __name__ == '__main__':
    main()
