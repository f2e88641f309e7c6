"""Tune the classical references per dimming level on a validation set, then score them on a test set.

A baseline is only fair when it had the same chance as the networks: those are tuned on the
validation split, so the joint bilateral filter (``JointBilateralFnF``) and non-local means
(``NLMeansNoFlash``) are too. For every dimming level of the validation set, each point of a
coarse grid of the filter's parameters is run on that level's validation samples and scored by
PSNR on rendered sRGB, exactly as ``fnf-benchmark`` scores (the set's ``render_pair`` and
:mod:`fnf_basicsr.metrics`); the best point (the defaults count as a candidate, so tuned is never
worse than default on validation) becomes that level's parameters. Tuned and default parameters
are then scored on the test set, each test sample with the parameters of its level (the nearest
tuned level in log scale when the test set has another).

Both sets are frozen sets (``scripts/data_preparation/freeze_testset.py``), so every grid point
sees bit-identical inputs. Outputs in ``--out``: ``tuned_references.json`` (per method and level:
the grid, every grid point's validation PSNR, the chosen parameters; read it back with
:func:`load_tuned_references`) and ``report.md`` (the per-level table, tuned against default, and
the grid scores).

Examples:
    python scripts/data_preparation/freeze_testset.py -opt options/synthetic/train_fnf.yml --dataset val \\
        --output datasets/frozen/synthetic_val
    python scripts/data_preparation/freeze_testset.py -opt options/synthetic/test_fnf.yml \\
        --output datasets/frozen/synthetic_test
    OMP_NUM_THREADS=1 python scripts/evaluation/tune_references.py --val-set datasets/frozen/synthetic_val \\
        --test-set datasets/frozen/synthetic_test --val-scenes 8 --out reports/tuned_references
"""
import argparse
import inspect
import itertools
import json
import math
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml

from fnf_basicsr.errors import ConfigError, DataError, OutputExistsError, report_errors

PROG = 'tune_references.py'
FORMAT = 'fnf-basicsr tuned references v1'
PARAMS_FILE = 'tuned_references.json'
REPORT_FILE = 'report.md'
LABELS = {'JointBilateralFnF': 'joint bilateral (flash-guided)', 'NLMeansNoFlash': 'non-local means (no-flash)'}
# Coarse grids on the parameters that matter (each class's docstring says what they do), shaped by
# two earlier runs on the synthetic validation split (docs/references.md, "How the grids were chosen"). The
# joint bilateral filter's automatic spatial sigma is clamped at 1/32 of the image side, which binds at 50x
# and 100x and differs between crop sizes, so fixed sigmas in pixels are candidates too.
DEFAULT_GRIDS = {
    'JointBilateralFnF': {'sigma_space': [None, 8.0, 16.0], 'flat_noise_target': [0.03, 0.06],
                          'sigma_range': [4.0, 8.0, 16.0], 'detail_transfer': [False, True],
                          'detail_eps': [0.15, 0.5]},
    'NLMeansNoFlash': {'h': [0.6, 0.75, 0.9], 'patch_size': [5, 7], 'patch_distance': [14]},
}
# Parameters without effect when another one switches their part off: fixed to their default, so
# that the grid holds each distinct filter once.
INACTIVE_WHEN = {'JointBilateralFnF': {'detail_eps': lambda params: not params.get('detail_transfer', True),
                                       'flat_noise_target': lambda params: params.get('sigma_space') is not None}}
METRICS = ('psnr', 'ssim_basicsr', 'ssim_release')


# ---------------------------------------------------------------------------------------------
# Grid
# ---------------------------------------------------------------------------------------------

def default_params(method, names):
    """The constructor defaults of ``method`` (a registered reference) for the parameters ``names``.

    Args:
        method: class name, e.g. ``'NLMeansNoFlash'``.
        names: parameter names.

    Returns:
        dict name -> default value.

    Example:
        >>> default_params('NLMeansNoFlash', ['h'])
        {'h': 0.6}
    """
    signature = inspect.signature(reference_class(method))
    unknown = [name for name in names if name not in signature.parameters]
    if unknown:
        raise ConfigError(f'{method} has no parameter(s) {unknown}; it takes {list(signature.parameters)}')
    return {name: signature.parameters[name].default for name in names}


def reference_class(method):
    """The registered class of a reference method name."""
    import fnf_basicsr  # noqa: F401  (registers the archs)
    from basicsr.utils.registry import ARCH_REGISTRY
    if method not in DEFAULT_GRIDS:
        raise ConfigError(f'unknown reference {method!r}; tunable: {sorted(DEFAULT_GRIDS)}')
    return ARCH_REGISTRY.get(method)


def grid_points(method, grid):
    """Every distinct parameter set of a grid (Cartesian product, inactive parameters at their default).

    Args:
        method: class name of the reference.
        grid: dict parameter -> list of values.

    Returns:
        list of dicts, in the product's order, without duplicates.

    Example:
        >>> len(grid_points('NLMeansNoFlash', {'h': [0.5, 0.6], 'patch_size': [5, 7]}))
        4
    """
    names = list(grid)
    defaults = default_params(method, names)
    points, seen = [], set()
    for values in itertools.product(*(grid[name] for name in names)):
        point = canonical(method, dict(zip(names, values)), defaults)
        key = json.dumps(point, sort_keys=True)
        if key not in seen:
            seen.add(key)
            points.append(point)
    return points


def canonical(method, params, defaults):
    """``params`` with every parameter that has no effect set to its default."""
    params = dict(params)
    for name, inactive in INACTIVE_WHEN.get(method, {}).items():
        if name in params and inactive(params):
            params[name] = defaults[name]
    return params


def parse_grid_overrides(items):
    """``METHOD.PARAM=V1,V2,...`` strings -> {method: {param: [values]}} (values read as YAML scalars)."""
    overrides = defaultdict(dict)
    for item in items or []:
        target, sep, values = item.partition('=')
        method, dot, name = target.partition('.')
        if not sep or not dot or not values:
            raise ConfigError(f'--grid {item!r}: write METHOD.PARAM=V1,V2,... e.g. NLMeansNoFlash.h=0.5,0.6')
        reference_class(method)
        overrides[method][name] = [yaml.safe_load(value) for value in values.split(',')]
    return dict(overrides)


def build_reference(method, params):
    """The reference network with ``params`` (others at their defaults), in eval mode."""
    return reference_class(method)(**params).eval()


# ---------------------------------------------------------------------------------------------
# Samples and scores
# ---------------------------------------------------------------------------------------------

def samples_by_level(test_set, max_scenes=None):
    """The samples of a frozen set grouped by dimming level, the first ``max_scenes`` of each.

    Args:
        test_set: :class:`fnf_basicsr.benchmark.FrozenTestSet`.
        max_scenes: samples kept per level (None: all).

    Returns:
        dict level (float) -> list of samples (dicts with ``lq``, ``gt``, ``gain``, ...), levels in
        decreasing order.
    """
    levels = defaultdict(list)
    for index in range(len(test_set)):
        sample = test_set.sample(index, 'flash_noflash')
        level = float(sample['dimming'])
        if max_scenes is None or len(levels[level]) < max_scenes:
            levels[level].append(sample)
    return dict(sorted(levels.items(), reverse=True))


def score_samples(net, samples, test_set, metrics=('psnr',)):
    """Per-sample scores of ``net``, rendered and measured as fnf-benchmark does.

    Args:
        net: a reference network, (1, 12, H, W) -> (1, 3, H, W).
        samples: samples of ``test_set``.
        test_set: the set they come from (it renders output and target to sRGB).
        metrics: names from :mod:`fnf_basicsr.metrics`.

    Returns:
        list of dicts metric -> value, one per sample.
    """
    from fnf_basicsr import metrics as metric_functions
    rows = []
    for sample in samples:
        with torch.no_grad():
            output = net(sample['lq'][None]).float()
        result, target = test_set.render_pair(output, sample)
        rows.append({name: getattr(metric_functions, name)(result, target) for name in metrics})
    return rows


def mean_scores(rows):
    """Mean of every metric over rows (each a dict metric -> value)."""
    return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}


def tune_level(method, points, defaults, samples, test_set, progress=None):
    """Validation PSNR of every grid point (and of the defaults) on one level; the best is chosen.

    Args:
        method: class name.
        points: grid points (:func:`grid_points`).
        defaults: the default values of the grid's parameters.
        samples: the level's validation samples.
        test_set: the validation set (renders the outputs).
        progress: optional callable run after each point.

    Returns:
        dict with ``grid_scores`` (list of {params, val_psnr}), ``default`` ({params, val_psnr}),
        ``params`` (the chosen point) and ``val_psnr`` (its score). Ties keep the earlier candidate,
        the defaults first.
    """
    def evaluate(params):
        return mean_scores(score_samples(build_reference(method, params), samples, test_set))['psnr']

    default_key = json.dumps(defaults, sort_keys=True)
    scores = []
    for point in points:
        scores.append({'params': point, 'val_psnr': evaluate(point)})
        if progress:
            progress()
    default_score = next((row['val_psnr'] for row in scores if json.dumps(row['params'], sort_keys=True)
                          == default_key), None)
    if default_score is None:
        default_score = evaluate(defaults)
    best = {'params': defaults, 'val_psnr': default_score}
    for row in scores:
        if row['val_psnr'] > best['val_psnr']:
            best = row
    return {'params': best['params'], 'val_psnr': best['val_psnr'],
            'default': {'params': defaults, 'val_psnr': default_score}, 'grid_scores': scores}


def params_for_dimming(params_by_level, dimming):
    """The parameters of the tuned level nearest to ``dimming`` (in log scale; exact levels win).

    Args:
        params_by_level: {level: params} as returned per method by :func:`load_tuned_references`.
        dimming: the sample's dimming factor.

    Returns:
        dict of parameters.

    Example:
        >>> params_for_dimming({100.0: {'h': 0.8}, 12.5: {'h': 0.5}}, 50)
        {'h': 0.8}
    """
    if not params_by_level:
        raise ConfigError('no tuned level to choose parameters from')
    level = min(params_by_level, key=lambda lv: (abs(math.log(float(lv)) - math.log(float(dimming))), -float(lv)))
    return params_by_level[level]


def score_test(method, params_by_level, levels, test_set, cache=None):
    """Mean test scores per level, each level with its tuned (or nearest tuned) parameters.

    Args:
        method: class name.
        params_by_level: {level: params}.
        levels: {level: samples} of the test set (:func:`samples_by_level`).
        test_set: the set the samples come from.
        cache: optional dict shared between calls: a level already scored with the same parameters
            (tuned equal to default) is not run twice.

    Returns:
        dict level -> {metric: mean, 'count': n}.
    """
    cache = {} if cache is None else cache
    results = {}
    for level, samples in levels.items():
        params = params_for_dimming(params_by_level, level)
        key = (method, level, json.dumps(params, sort_keys=True))
        if key not in cache:
            rows = score_samples(build_reference(method, params), samples, test_set, METRICS)
            cache[key] = {**mean_scores(rows), 'count': len(rows)}
        results[level] = cache[key]
    return results


# ---------------------------------------------------------------------------------------------
# Parameter file and report
# ---------------------------------------------------------------------------------------------

def level_key(level):
    """JSON key of a dimming level: ``'100'``, ``'12.5'``."""
    return f'{float(level):g}'


def load_tuned_references(path):
    """Read a parameter file written by this command.

    Args:
        path: ``tuned_references.json``.

    Returns:
        {method class name: {dimming level (float): params dict}}; build a reference with
        ``ARCH_REGISTRY.get(method)(**params)`` and pick the level with :func:`params_for_dimming`.

    Raises:
        DataError: not a parameter file of this format.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), PARAMS_FILE)
        >>> levels = {'50': {'params': {'h': 0.7}}, '12.5': {'params': {'h': 0.5}}}
        >>> _ = Path(path).write_text(json.dumps({'format': FORMAT, 'methods': {'NLMeansNoFlash': {'levels': levels}}}))
        >>> load_tuned_references(path)
        {'NLMeansNoFlash': {50.0: {'h': 0.7}, 12.5: {'h': 0.5}}}
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        raise DataError(f'{path}: not a readable tuned-reference file ({type(error).__name__}: {error}); '
                        f'write one with {PROG}') from None
    if not isinstance(content, dict) or content.get('format') != FORMAT:
        raise DataError(f'{path}: not a tuned-reference file of format {FORMAT!r}; write one with {PROG}')
    return {method: {float(level): dict(entry['params']) for level, entry in record['levels'].items()}
            for method, record in content['methods'].items()}


def write_outputs(out_dir, content, overwrite):
    """Write the parameter file and the markdown report atomically; returns their paths."""
    from fnf_basicsr.utils.files import write_atomically
    params_path, report_path = out_dir / PARAMS_FILE, out_dir / REPORT_FILE
    write_atomically(params_path, (json.dumps(content, indent=1) + '\n').encode('utf-8'), overwrite)
    write_atomically(report_path, render_report(content).encode('utf-8'), overwrite)
    return params_path, report_path


def render_report(content):
    """The markdown report of a parameter file's content (tables per level, then the grids)."""
    lines = ['# Classical references tuned per dimming level', '',
             f"Validation set `{content['val_set']}` ({_counts(content['val_scenes'])} samples), test set "
             f"`{content['test_set']}` ({_counts(content['test_scenes'])} samples). Chosen by PSNR on rendered sRGB as "
             'fnf-benchmark scores; cells: PSNR / SSIM BasicSR / SSIM release, as its table. Parameters not listed are '
             'the class defaults.',
             '',
             f"Command: `{content['command']}`", '',
             f"Machine: {content['machine']['cpu']} (torch CPU capability {content['machine']['capability']}, "
             f"{content['machine']['threads']} thread(s)); wall time {content['wall_s']:.0f} s.", '']
    lines += _summary_table(content)
    for method, record in content['methods'].items():
        lines += ['', f'## {LABELS.get(method, method)} (`{method}`): validation PSNR of every grid point', '',
                  'Grid: ' + ', '.join(f'`{name}` {values}' for name, values in record['grid'].items()), '']
        lines += _grid_table(record)
    return '\n'.join(lines) + '\n'


def _summary_table(content):
    header = ' | '.join(f'{split} {which}' for split in ('val', 'test') for which in ('default', 'tuned'))
    lines = [f'| method | level | parameters (tuned) | {header} |', '|---' * 7 + '|']
    for method, record in content['methods'].items():
        for level, entry in record['levels'].items():
            cells = [_scores_cell(record.get(split, {}).get(level, {}).get(which))
                     for split in ('val', 'test') for which in ('default', 'tuned')]
            lines.append(f"| {LABELS.get(method, method)} | {level}x | {_params_text(entry['params'])} | "
                         + ' | '.join(cells) + ' |')
    return lines


def _grid_table(record):
    """Rows: grid points (plus the defaults when the grid lacks them); columns: levels; the chosen one in bold."""
    levels = list(record['levels'])
    chosen = {level: json.dumps(entry['params'], sort_keys=True) for level, entry in record['levels'].items()}
    rows = [(row['params'], [record['levels'][level]['grid_scores'][index]['val_psnr'] for level in levels])
            for index, row in enumerate(record['levels'][levels[0]]['grid_scores'])]
    defaults = record['levels'][levels[0]]['default']['params']
    if all(json.dumps(params, sort_keys=True) != json.dumps(defaults, sort_keys=True) for params, _ in rows):
        rows.append((defaults, [record['levels'][level]['default']['val_psnr'] for level in levels]))
    lines = ['| parameters | ' + ' | '.join(f'{level}x' for level in levels) + ' |', '|---' * (len(levels) + 1) + '|']
    for params, scores in rows:
        key = json.dumps(params, sort_keys=True)
        cells = [f'**{value:.2f}**' if chosen[level] == key else f'{value:.2f}' for level, value in zip(levels, scores)]
        label = _params_text(params) + (' (defaults)' if key == json.dumps(defaults, sort_keys=True) else '')
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return lines


def _counts(per_level):
    return ', '.join(f'{count} at {level}x' for level, count in per_level.items())


def _scores_cell(scores):
    if not scores:
        return '-'
    return f"{scores['psnr']:.2f} dB / {scores['ssim_basicsr']:.3f} / {scores['ssim_release']:.3f}"


def _params_text(params):
    return ', '.join(f'{name} {_value_text(value)}' for name, value in params.items())


def _value_text(value):
    if value is None:
        return 'auto'  # sigma_space None: set per image
    return f'{value:.4g}' if isinstance(value, float) else str(value)


def machine_description():
    """CPU model, torch's CPU capability and thread count, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return {'cpu': cpu, 'capability': torch.backends.cpu.get_cpu_capability(), 'threads': torch.get_num_threads()}


# ---------------------------------------------------------------------------------------------
# Command
# ---------------------------------------------------------------------------------------------

def build_parser():
    doc_head, doc_rest = __doc__.split('\n\n', 1)
    parser = argparse.ArgumentParser(prog=PROG, description=doc_head, epilog=doc_rest,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--val-set', required=True,
                        help='frozen validation set the parameters are chosen on (freeze_testset.py -opt '
                        'options/synthetic/train_fnf.yml --dataset val).')
    parser.add_argument('--test-set', required=True,
                        help='frozen test set the tuned and default parameters are scored on (never the '
                        'validation set).')
    parser.add_argument('--out', required=True, help=f'report folder (created): {PARAMS_FILE} and {REPORT_FILE}.')
    parser.add_argument('--methods', nargs='+', default=list(DEFAULT_GRIDS), choices=list(DEFAULT_GRIDS),
                        help='references to tune (default: both).')
    parser.add_argument('--grid', action='append', metavar='METHOD.PARAM=V1,V2,...',
                        help='replace one parameter\'s grid values (repeatable), e.g. NLMeansNoFlash.h=0.5,0.6; '
                        'a parameter not in the default grid is added.')
    parser.add_argument('--val-scenes', type=int, default=8,
                        help='validation samples per dimming level (the first N; default 8).')
    parser.add_argument('--test-scenes', type=int, default=None,
                        help='test samples per dimming level (the first N; default all).')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads (default: torch\'s, i.e. OMP_NUM_THREADS when set).')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing report in --out.')
    parser.add_argument('--quiet', action='store_true', help='no progress bar.')
    return parser


def main(argv=None):
    """Run the command (``argv`` as on the command line); returns the content of the parameter file."""
    argv = sys.argv[1:] if argv is None else list(argv)
    with report_errors(PROG):
        args = build_parser().parse_args(argv)
        return run(args, 'python scripts/evaluation/tune_references.py ' + ' '.join(argv))


def run(args, command=''):
    """Tune, score and write the outputs as ``args`` say; returns the written content."""
    from tqdm import tqdm

    from fnf_basicsr.benchmark import open_test_set
    from fnf_basicsr.utils.files import prepare_output_folder
    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ('val_scenes', 'test_scenes'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f'--{name.replace("_", "-")} must be >= 1')
    out_dir = Path(args.out)
    existing = [path for path in (out_dir / PARAMS_FILE, out_dir / REPORT_FILE) if path.exists()]
    if existing and not args.overwrite:
        raise OutputExistsError(f'{existing[0]} already exists; pass --overwrite or choose another --out')
    overrides = parse_grid_overrides(args.grid)
    val_set, test_set = open_frozen(args.val_set, open_test_set), open_frozen(args.test_set, open_test_set)
    if val_set.identity() == test_set.identity():
        raise ConfigError('--val-set and --test-set are the same set: parameters chosen on the test set are not a '
                          'fair baseline; freeze a validation set (see --help)')
    prepare_output_folder(out_dir, 'report')
    val_levels = samples_by_level(val_set, args.val_scenes)
    test_levels = samples_by_level(test_set, args.test_scenes)
    grids = {method: {**DEFAULT_GRIDS[method], **overrides.get(method, {})} for method in args.methods}
    points = {method: grid_points(method, grid) for method, grid in grids.items()}
    total = sum(len(p) for p in points.values()) * len(val_levels)
    methods = {}
    with tqdm(total=total, desc='grid points x levels', disable=args.quiet) as bar:
        for method, grid in grids.items():
            defaults = default_params(method, list(grid))
            levels = {level_key(level): tune_level(method, points[method], defaults, samples, val_set, bar.update)
                      for level, samples in val_levels.items()}
            methods[method] = {'grid': grid, 'defaults': defaults, 'levels': levels}
    for method, record in tqdm(methods.items(), desc='every metric, default and tuned', disable=args.quiet):
        chosen = {'default': {float(level): entry['default']['params'] for level, entry in record['levels'].items()},
                  'tuned': {float(level): entry['params'] for level, entry in record['levels'].items()}}
        for split, levels, source in (('val', val_levels, val_set), ('test', test_levels, test_set)):
            cache = {}
            scored = {which: score_test(method, params, levels, source, cache) for which, params in chosen.items()}
            record[split] = {level_key(level): {which: scored[which][level] for which in scored} for level in levels}
    content = {'format': FORMAT, 'val_set': str(args.val_set), 'test_set': str(args.test_set),
               'val_scenes': {level_key(lv): len(s) for lv, s in val_levels.items()},
               'test_scenes': {level_key(lv): len(s) for lv, s in test_levels.items()},
               'command': command, 'machine': machine_description(), 'wall_s': time.perf_counter() - start,
               'methods': methods}
    params_path, report_path = write_outputs(out_dir, content, args.overwrite)
    if not args.quiet:
        print('\n'.join(_summary_table(content)))
    print(f'wrote {params_path} and {report_path} in {content["wall_s"]:.0f} s')
    return content


def open_frozen(path, opener):
    """A frozen set (the released test set has no validation split and is not supported here)."""
    test_set = opener(path)
    if test_set.kind != 'frozen':
        raise ConfigError(f'{path}: tune_references.py reads frozen sets (freeze_testset.py), not the released '
                          'test set')
    return test_set


if __name__ == '__main__':
    main()
