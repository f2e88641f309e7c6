"""``fnf-benchmark``: evaluate trained models and classical references on frozen test sets.

Writes the paper's Table 1 / Table 2 layout (PSNR / SSIM per dimming factor, markdown and CSV),
the PSNR-vs-displacement plot of Figure 3 (from a frozen displacement sweep), and a qualitative
strip per image like Figure 4. Per-image results are cached as JSON lines, so an interrupted run
resumes where it stopped; finished reports are never overwritten unless ``--overwrite``.
"""
import argparse
import csv
import inspect
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

REFERENCES = {
    'noisy input': {'type': 'NoisyInput'},
    'joint bilateral (flash-guided)': {'type': 'JointBilateralFnF'},
    'single-image denoiser (no-flash)': {'type': 'NLMeansNoFlash'},
}
GROUP_TITLES = {'noflash': 'No-flash input only', 'noflash_burst': '2-frame burst input (no flash)',
                'flash_noflash': 'Flash and no-flash input pair', 'reference': 'References (no training)'}
METRICS = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
           'ssim': {'type': 'calculate_ssim', 'crop_border': 0}}


class NoisyInput(torch.nn.Module):
    """The noisy no-flash input itself, scored like a method."""
    trainable = False

    def forward(self, lq):
        return lq[:, :3]


class Method:
    """A network to evaluate: a trained checkpoint or a parameter-free reference."""

    def __init__(self, label, net, input_mode, group, source):
        self.label, self.net, self.input_mode, self.group, self.source = label, net, input_mode, group, source

    @classmethod
    def from_spec(cls, spec, device):
        """``LABEL=SPEC`` or ``SPEC``; SPEC is an experiment name or a ``.pth`` checkpoint."""
        from fnf_basicsr.inference.checkpoint import load_network
        label, _, target = spec.rpartition('=')
        checkpoint = Path(target)
        if checkpoint.suffix != '.pth':
            checkpoint = Path('experiments') / target / 'models' / 'net_g_latest.pth'
        loaded = load_network(checkpoint, device=device)
        return cls(label or target, loaded.net, loaded.input_mode, loaded.input_mode, str(checkpoint))

    @classmethod
    def reference(cls, label, device):
        from basicsr.archs import build_network
        opt = dict(REFERENCES[label])
        net = NoisyInput() if opt['type'] == 'NoisyInput' else build_network(opt)
        return cls(label, net.to(device).eval(), 'flash_noflash', 'reference', opt['type'])

    def run(self, lq):
        """The output and, for networks that expose them (DeepFnF), the intermediates."""
        with torch.no_grad():
            if 'return_intermediates' in inspect.signature(self.net.forward).parameters:
                parts = self.net(lq, return_intermediates=True)
                return parts['output'], parts
            return self.net(lq), None


def safe_name(text):
    return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in text)


def frozen_dataset(root, input_mode):
    from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
    return FlashNoFlashDataset({'name': Path(root).name, 'phase': 'test', 'frozen_root': str(root),
                                'input_mode': input_mode})


def score(result_srgb, gt_srgb):
    from basicsr.metrics import calculate_metric

    from fnf_basicsr.models.fnf_model import to_metric_image
    images = {'img': to_metric_image(result_srgb), 'img2': to_metric_image(gt_srgb)}
    return {name: float(calculate_metric(images, opt)) for name, opt in METRICS.items()}


def read_cache(path):
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row['key']: row for row in rows}


def evaluate(method, test_root, cache_path, strip_keys, strip_dir, device, progress=True):
    """Per-image PSNR/SSIM of ``method`` on a frozen set, resuming from ``cache_path``."""
    from fnf_basicsr.utils.rendering import render_srgb
    dataset = frozen_dataset(test_root, method.input_mode)
    done = read_cache(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_path, 'a') as cache:
        for index in tqdm(range(len(dataset)), desc=f'{method.label} on {Path(test_root).name}', unit='image',
                          disable=not progress):
            key = dataset.entries[index]['key']
            if key in done and not (key in strip_keys and not (strip_dir / f'{key}.npz').is_file()):
                continue
            sample = dataset[index]
            lq = sample['lq'][None].to(device)
            gain, matrix = sample['gain'][None].to(device), sample['color_matrix'][None].to(device)
            output, parts = method.run(lq)
            result = render_srgb(output, gain, matrix).clamp(0, 1)[0].cpu()
            gt = render_srgb(sample['gt'][None].to(device), gain, matrix).clamp(0, 1)[0].cpu()
            if key in strip_keys:
                save_strip_parts(strip_dir / f'{key}.npz', result, parts, gain, matrix)
            if key in done:
                continue
            row = {'key': key, 'dimming': float(sample['dimming']), 'displacement': float(sample['displacement']),
                   **score(result, gt)}
            cache.write(json.dumps(row) + '\n')
            cache.flush()
            done[key] = row
    return list(done.values())


def save_strip_parts(path, result, parts, gain, matrix):
    from fnf_basicsr.utils.rendering import render_srgb
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {'result': result.numpy()}
    if parts is not None and parts.get('scale_map') is not None:  # DeepFnF's F and G, as in Figure 4
        # F and G are only defined up to a per-channel factor (Y = F * G, either may be negative):
        # show F at the output's level and G relative to its mean, channel by channel
        filtered, scale_map = parts['filtered'].float(), parts['scale_map'].float()
        level = scale_map.mean(dim=(2, 3), keepdim=True)
        level = torch.where(level.abs() < 1e-12, torch.ones_like(level), level)
        arrays['filtered'] = render_srgb(filtered * level, gain, matrix).clamp(0, 1)[0].cpu().numpy()
        arrays['scale_map'] = (scale_map / level)[0].cpu().numpy()
    np.savez_compressed(path, **arrays)


def summarise(rows, by):
    """Mean PSNR/SSIM of rows grouped by ``by`` (a row -> group function)."""
    groups = defaultdict(list)
    for row in rows:
        groups[by(row)].append(row)
    return {group: {m: float(np.mean([r[m] for r in members])) for m in METRICS} | {'count': len(members)}
            for group, members in groups.items()}


def write_table(methods, results, out_dir):
    """Table 1 layout: a row per method grouped by input, a PSNR / SSIM column per dimming factor."""
    dimmings = sorted({row['dimming'] for rows in results.values() for row in rows}, reverse=True)
    header = '| method | ' + ' | '.join(f'{d:g}x dimmed (PSNR / SSIM)' for d in dimmings) + ' |'
    lines = [header, '|' + '---|' * (len(dimmings) + 1)]
    csv_rows = []
    for group in GROUP_TITLES:
        members = [m for m in methods if m.group == group]
        if members:
            lines.append(f'| *{GROUP_TITLES[group]}* |' + ' |' * len(dimmings))
        for method in members:
            stats = summarise(results[method.label], lambda r: r['dimming'])
            cells = [f"{stats[d]['psnr']:.2f} dB / {stats[d]['ssim']:.3f}" if d in stats else '-' for d in dimmings]
            lines.append(f'| {method.label} | ' + ' | '.join(cells) + ' |')
            csv_rows += [{'method': method.label, 'input': group, 'dimming': d, 'psnr': round(stats[d]['psnr'], 4),
                          'ssim': round(stats[d]['ssim'], 5), 'images': stats[d]['count']} for d in dimmings if d in stats]
    (out_dir / 'table.md').write_text('\n'.join(lines) + '\n')
    with open(out_dir / 'table.csv', 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=['method', 'input', 'dimming', 'psnr', 'ssim', 'images'])
        writer.writeheader()
        writer.writerows(csv_rows)
    return '\n'.join(lines)


def write_displacement_plot(methods, sweep_results, bin_edges, out_path):
    """Figure 3: mean PSNR per displacement bin, one line per method."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    def bin_of(row):
        return int(np.clip(np.searchsorted(bin_edges, row['displacement'], side='right') - 1, 0, len(bin_edges) - 2))

    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    for method in methods:
        stats = summarise(sweep_results[method.label], bin_of)
        bins = sorted(stats)
        centres = [(bin_edges[b] + bin_edges[b + 1]) / 2 for b in bins]
        axis.plot(centres, [stats[b]['psnr'] for b in bins], marker='o', label=method.label)
    axis.set_xlabel('mean displacement between flash and no-flash (px)')
    axis.set_ylabel('PSNR (dB)')
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out_path)
    plt.close(figure)


def write_strip(key, test_root, methods, strip_dir, out_path):
    """Figure 4 style: inputs, each method, DeepFnF's filtered no-flash and scale map, target."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from fnf_basicsr.utils.rendering import render_srgb
    dataset = frozen_dataset(test_root, 'flash_noflash')
    sample = dataset[[entry['key'] for entry in dataset.entries].index(key)]
    gain, matrix = sample['gain'][None], sample['color_matrix'][None]

    def render(linear):
        return render_srgb(linear[None], gain, matrix).clamp(0, 1)[0].numpy()

    panels = [('no-flash input', render(sample['lq'][:3])),
              # the flash frame is well exposed at the input scale (2 x flash-only + dimmed ambient)
              ('flash input', render_srgb(sample['lq'][None, 3:6], torch.tensor([0.5]), matrix).clamp(0, 1)[0].numpy())]
    extras = []
    for method in methods:
        parts = np.load(strip_dir / safe_name(method.label) / f'{key}.npz')
        panels.append((method.label, parts['result']))
        if 'filtered' in parts and not extras:
            extras = [(f'{method.label}: filtered F', parts['filtered']),
                      (f'{method.label}: scale map G / (2 mean G)', np.clip(parts['scale_map'] / 2, 0, 1))]
    panels += extras + [('ground truth', render(sample['gt']))]
    columns = min(len(panels), 7)
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.5 * rows), dpi=110, squeeze=False)
    for axis in axes.flat:
        axis.axis('off')
    for axis, (title, image) in zip(axes.flat, panels):
        axis.imshow(np.transpose(image, (1, 2, 0)))
        axis.set_title(title, fontsize=7)
    figure.suptitle(f'{key}', fontsize=8)
    figure.tight_layout()
    figure.savefig(out_path)
    plt.close(figure)


def report_paths(out_dir, with_sweep, strip_keys):
    paths = [out_dir / 'table.md', out_dir / 'table.csv']
    paths += [out_dir / 'fig3_displacement.png'] if with_sweep else []
    return paths + [out_dir / 'strips' / f'{key}.png' for key in strip_keys]


def pick_strip_keys(test_root, count):
    """The first ``count`` images at the dimming factor closest to 50x (the paper's Fig. 3/4 level)."""
    dataset = frozen_dataset(test_root, 'flash_noflash')
    target = min(dataset.frozen['options']['dimming_factors'], key=lambda d: abs(float(d) - 50))
    keys = []
    for index, entry in enumerate(dataset.entries):
        if len(keys) == count:
            break
        if float(dataset[index]['dimming']) == float(target):
            keys.append(entry['key'])
    return keys


def build_parser():
    parser = argparse.ArgumentParser(prog='fnf-benchmark', description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    parser.add_argument('methods', nargs='+', metavar='[LABEL=]SPEC',
                        help='experiment names (experiments/<name>/models/net_g_latest.pth) or .pth checkpoints')
    parser.add_argument('--test-set', required=True, help='frozen test set (scripts/freeze_testset.py).')
    parser.add_argument('--sweep-set', help='frozen displacement sweep (freeze_testset.py --displacement-bins).')
    parser.add_argument('--out', required=True, help='report folder (created).')
    parser.add_argument('--strips', type=int, default=2, help='qualitative strips to draw (default 2).')
    parser.add_argument('--no-references', action='store_true',
                        help='skip the noisy input and the two classical references.')
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda (default auto).')
    parser.add_argument('--overwrite', action='store_true', help='rewrite existing report files.')
    parser.add_argument('--quiet', action='store_true', help='no progress bars.')
    return parser


EPILOG = """example:
  fnf-benchmark DeepFnF=train_fnf_synthetic KPN=train_kpn_synthetic \\
      --test-set datasets/frozen/synthetic_test --sweep-set datasets/frozen/synthetic_fig3 \\
      --out reports/synthetic
"""


def main(argv=None):
    args = build_parser().parse_args(argv)
    import fnf_basicsr  # noqa: F401
    device = torch.device('cuda' if args.device == 'auto' and torch.cuda.is_available()
                          else 'cpu' if args.device == 'auto' else args.device)
    out_dir = Path(args.out)
    strip_keys = pick_strip_keys(args.test_set, args.strips)
    existing = [p for p in report_paths(out_dir, bool(args.sweep_set), strip_keys) if p.exists()]
    if existing and not args.overwrite:
        raise SystemExit(f'fnf-benchmark: {existing[0]} already exists ({len(existing)} report files); '
                         'pass --overwrite to rewrite the report, or choose another --out')
    methods = [Method.from_spec(spec, device) for spec in args.methods]
    if not args.no_references:
        methods += [Method.reference(label, device) for label in REFERENCES]
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise SystemExit(f'fnf-benchmark: method labels must be unique, got {labels}; use LABEL=SPEC')
    results, sweep = {}, {}
    for method in methods:
        name = safe_name(method.label)
        results[method.label] = evaluate(method, args.test_set, out_dir / 'per_image' / f'{name}.jsonl',
                                         set(strip_keys), out_dir / 'strip_parts' / name, device, not args.quiet)
        if args.sweep_set:
            sweep[method.label] = evaluate(method, args.sweep_set, out_dir / 'per_image' / f'{name}_sweep.jsonl',
                                           set(), out_dir / 'strip_parts' / name, device, not args.quiet)
    print(write_table(methods, results, out_dir))
    if args.sweep_set:
        from fnf_basicsr.data.fnf_dataset import read_frozen_manifest
        edges = read_frozen_manifest(args.sweep_set)['options']['displacement_bins']
        write_displacement_plot(methods, sweep, edges, out_dir / 'fig3_displacement.png')
    (out_dir / 'strips').mkdir(parents=True, exist_ok=True)
    for key in strip_keys:
        write_strip(key, args.test_set, methods, out_dir / 'strip_parts', out_dir / 'strips' / f'{key}.png')
    print(f'report written to {out_dir}')


if __name__ == '__main__':
    main()
