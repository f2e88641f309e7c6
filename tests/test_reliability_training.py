"""`basicsr train` and `basicsr test` as a user breaks them (issue 20): nothing from the command line or an option
file is evaluated, the effective options reach fnf-denoise and fnf-benchmark, runs of one name never mix their
outputs, numbers are read as numbers, and every known failure is one line (exit 2; Ctrl-C: exit 130) that leaves
nothing the run made half-done behind.

Full runs are subprocesses (BasicSR's logger is process-wide); failures before BasicSR starts run in-process.
"""
import os
import subprocess
import sys

import pytest
import torch

from conftest import PLUGINS_DIR, run_python, write_yaml
from fnf_basicsr import cli, compat
from fnf_basicsr.data.synthetic import generate_split
from fnf_basicsr.errors import ConfigError
from fnf_basicsr.inference.checkpoint import CheckpointError, load_network, read_option_file
from fnf_basicsr.utils.options import EFFECTIVE_MARKER, effective_options
from test_pipeline import fnf_options

TRAINED = 'trained'
OVERRIDE = 'network_g:upsampling=tf1'  # no weight shape tells it: only the options say which network was trained


def options(run_name, scenes, **changes):
    opt = fnf_options(run_name, scenes, total_iter=2, save_freq=2)
    opt.update(plugins=[])
    opt['val'].update(val_freq=100, save_img=False)
    opt['datasets']['val']['max_images'] = 1
    opt['logger']['use_tb_logger'] = False
    opt.update(changes)
    return opt


def run_command(args, cwd):
    """``python -m ARGS`` in ``cwd`` with the test plugins importable: (exit code, stderr)."""
    env = {**os.environ, 'OMP_NUM_THREADS': '1',
           'PYTHONPATH': os.pathsep.join(filter(None, [str(PLUGINS_DIR), os.environ.get('PYTHONPATH')]))}
    proc = subprocess.run([sys.executable, '-m', *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=240)
    return proc.returncode, proc.stderr


def last_line(stderr):
    assert 'Traceback' not in stderr, stderr[-3000:]
    return stderr.strip().splitlines()[-1]


def one_line_error(capsys, monkeypatch, argv):
    """Run ``basicsr ARGV`` in-process; it must exit 2 with one line on stderr, which is returned."""
    monkeypatch.setattr(sys, 'argv', list(sys.argv))  # run_pipeline hands BasicSR its own argv
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2, lines
    lines = [line for line in lines if not line.startswith('basicsr: note:')]
    assert len(lines) == 1 and 'Traceback' not in lines[0], lines
    return lines[0]


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('reliability_scenes')
    generate_split(root, 'train', num_scenes=4, size=48, workers=1, progress=False)
    return root


@pytest.fixture(scope='module')
def trained(scenes, tmp_path_factory):
    """A 2-iteration run trained with ``--force_yml network_g:upsampling=tf1``: (its folder, its option file)."""
    root = tmp_path_factory.mktemp('trained')
    write_yaml(root / 'train.yml', options(TRAINED, scenes))
    run_python(['-m', 'fnf_basicsr.train', '-opt', 'train.yml', '--force_yml', OVERRIDE], cwd=root)
    return root, root / 'train.yml'


# --- 2: nothing is evaluated -------------------------------------------------------------------------------------

VALUE_PAYLOAD = 'name=[__import__("os").system("touch pwned")]'  # BasicSR evals values starting with [
KEY_PAYLOAD = 'name"];__import__("os").system("touch pwned");opt["name=x'  # and execs the keys


@pytest.mark.parametrize('payload', [VALUE_PAYLOAD, KEY_PAYLOAD], ids=['value', 'key'])
def test_force_yml_is_never_evaluated_through_basicsrs_own_parser(scenes, tmp_path, monkeypatch, payload):
    import basicsr.train
    write_yaml(tmp_path / 'o.yml', options('safe', scenes))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['basicsr', '-opt', 'o.yml', '--force_yml', payload])
    try:
        opt, _ = basicsr.train.parse_options(str(tmp_path), is_train=True)
    except ConfigError as error:  # refused, never evaluated: a list for a name, a key that is no option name
        assert 'name is text' in str(error) or 'is no option key' in str(error)
    assert not (tmp_path / 'pwned').exists()


def test_force_yml_payload_is_a_one_line_refusal_of_the_command(scenes, tmp_path, monkeypatch, capsys):
    write_yaml(tmp_path / 'o.yml', options('safe', scenes))
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, monkeypatch, ['train', '-opt', 'o.yml', '--force_yml', VALUE_PAYLOAD])
    assert 'name is text in o.yml' in line and 'got a list' in line
    assert not (tmp_path / 'pwned').exists() and not (tmp_path / 'experiments').exists()


def test_python_tags_in_an_option_file_are_never_constructed(tmp_path, monkeypatch):
    import basicsr.train
    (tmp_path / 'o.yml').write_text('name: !!python/object/apply:os.system ["touch pwned"]\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['basicsr', '-opt', 'o.yml'])
    with pytest.raises(ConfigError, match='is not valid YAML'):
        basicsr.train.parse_options(str(tmp_path), is_train=True)  # BasicSR alone reads it with the unsafe loader
    assert not (tmp_path / 'pwned').exists()


# --- 3: the effective options reach inference ---------------------------------------------------------------------

def test_inference_builds_the_network_the_overrides_trained(trained):
    root, _ = trained
    copy = root / 'experiments' / TRAINED / 'train.yml'
    assert copy.read_text().startswith(EFFECTIVE_MARKER)
    loaded = load_network(root / 'experiments' / TRAINED / 'models' / 'net_g_latest.pth')
    assert loaded.option_file == copy and loaded.network_opt['upsampling'] == 'tf1'


def test_a_copy_that_holds_the_options_before_network_overrides_is_refused(tmp_path):
    body = 'name: old\nnetwork_g: {type: DeepFnF, width: 0.0625}\n'
    header = '# GENERATE TIME: x\n# CMD:\n# basicsr train -opt old.yml --launcher none --force_yml {}\n\n'
    (tmp_path / 'old.yml').write_text(header.format(f'train:total_iter=9 {OVERRIDE}') + body)
    with pytest.raises(CheckpointError, match=f'before the overrides {OVERRIDE} of the command'):
        read_option_file(tmp_path / 'old.yml')
    (tmp_path / 'old.yml').write_text(header.format('train:total_iter=9') + body)  # the network is what it says
    assert read_option_file(tmp_path / 'old.yml')['network_g']['width'] == 0.0625


# --- 5: runs of one name never mix their outputs ------------------------------------------------------------------

def test_a_second_test_run_of_the_same_name_is_refused(trained, tmp_path, monkeypatch, capsys):
    root, _ = trained
    opt = options('shared', 'unused', model_type='FnFModel',
                  path={'pretrain_network_g': str(root / 'experiments' / TRAINED / 'models' / 'net_g_latest.pth')})
    opt['network_g']['upsampling'] = 'tf1'
    write_yaml(tmp_path / 'test.yml', opt)
    monkeypatch.chdir(tmp_path)
    with cli.ExperimentLock(str(tmp_path), 'shared', 'results', 'test'):
        line = one_line_error(capsys, monkeypatch, ['test', '-opt', 'test.yml'])
    assert f"another test run named 'shared' is running in {tmp_path / 'results'}" in line


@pytest.mark.parametrize('changes, message', [
    ({'path': {'experiments_root': '/data/runs'}}, r'path:experiments_root cannot be chosen: BasicSR 1.4.2 puts'),
    ({'path': {'models': 'elsewhere'}}, 'path:models cannot be chosen'),
    ({'path': {'results_root': 'elsewhere'}}, 'path:results_root cannot be chosen'),
    ({'path': {'pretrain_netwrok_g': 'w.pth'}}, r"path:pretrain_netwrok_g is not an entry BasicSR reads \(did you "
                                                r"mean 'pretrain_network_g'\?\)"),
    ({'name': '../elsewhere'}, r"name '../elsewhere' must be a plain folder name"),
], ids=['experiments_root', 'models', 'results_root', 'path-typo', 'name'])
def test_path_entries_basicsr_would_replace_are_refused(scenes, tmp_path, monkeypatch, capsys, changes, message):
    import re
    write_yaml(tmp_path / 'o.yml', options('paths', scenes, **changes))
    monkeypatch.chdir(tmp_path)
    assert re.search(message, one_line_error(capsys, monkeypatch, ['train', '-opt', 'o.yml']))
    assert not (tmp_path / 'experiments' / 'paths').exists()


# --- 6: numbers are numbers ---------------------------------------------------------------------------------------

def test_exponent_numbers_are_read_as_numbers(scenes, tmp_path):
    opt = options('numbers', scenes)
    (tmp_path / 'o.yml').write_text(cli_yaml(opt).replace('total_iter: 2', 'total_iter: 1e3')
                                    .replace('lr: 0.001', 'lr: 1e-3'))
    opt = effective_options(tmp_path / 'o.yml', ['train:scheduler:gamma=5e-1'])
    assert opt['train']['total_iter'] == 1000 and isinstance(opt['train']['total_iter'], int)
    assert opt['train']['optim_g']['lr'] == 0.001 and opt['train']['scheduler']['gamma'] == 0.5


def cli_yaml(opt):
    import yaml
    return yaml.safe_dump(opt, sort_keys=False)


@pytest.mark.parametrize('replace, message', [
    (('lr: 0.001', 'lr: -1e-3'), r'o.yml: train:optim_g:lr must be a number > 0, got -0.001'),
    (('lr: 0.001', "lr: '1e-3'"), r"train:optim_g:lr must be a number > 0, got the text '1e-3' \(write it unquoted"),
    (('total_iter: 2', 'total_iter: 2.5'), r'train:total_iter must be a whole number >= 1, got 2.5'),
    (('batch_size_per_gpu: 2', 'batch_size_per_gpu: 0'), r'datasets:train:batch_size_per_gpu must be a whole'),
    (('lr: 0.001', 'lr: 0.001\n    lr: 0.01'), r"o.yml: key 'lr' is given twice \(line \d+ and line \d+; the last"),
], ids=['negative-lr', 'quoted-lr', 'fractional-iterations', 'zero-batch', 'duplicate-key'])
def test_numbers_that_are_no_valid_value_are_refused_naming_the_key(scenes, tmp_path, monkeypatch, capsys, replace,
                                                                    message):
    import re
    text = cli_yaml(options('numbers', scenes))
    assert replace[0] in text
    (tmp_path / 'o.yml').write_text(text.replace(replace[0], replace[1], 1))
    monkeypatch.chdir(tmp_path)
    assert re.search(message, one_line_error(capsys, monkeypatch, ['train', '-opt', 'o.yml']))


# --- 7: one line, exit 2 (Ctrl-C: 130), nothing half-done left --------------------------------------------------

@pytest.mark.parametrize('forced, message', [
    ('train:total_iter=abc', r"train:total_iter is a number in o.yml \(2\), got text \('abc'\); pass a number"),
    ('train:total_iter=10=20', r"has two '='; pass one KEY=VALUE per key"),
    ('val:save_img=[1]', r'val:save_img is true or false in o.yml'),
    ('datasets:val:dimming_factors=20', r'dimming_factors is a list, e.g. \[1, 2\] in o.yml'),
    ('train:"total_iter"=3', r"""'train:"total_iter"' is no option key"""),
], ids=['text-for-number', 'two-equals', 'list-for-flag', 'number-for-list', 'quoted-key'])
def test_force_yml_values_of_the_wrong_kind_are_refused(scenes, tmp_path, monkeypatch, capsys, forced, message):
    import re
    write_yaml(tmp_path / 'o.yml', options('kinds', scenes))
    monkeypatch.chdir(tmp_path)
    assert re.search(message, one_line_error(capsys, monkeypatch, ['train', '-opt', 'o.yml', '--force_yml', forced]))


def test_resuming_with_another_network_is_one_line(trained, monkeypatch, capsys):
    root, option_file = trained
    monkeypatch.chdir(root)
    before = sorted(p.name for p in (root / 'experiments').iterdir())
    line = one_line_error(capsys, monkeypatch, ['train', '-opt', option_file.name, '--auto_resume', '--force_yml',
                                                OVERRIDE, 'network_g:width=0.125'])
    assert line.startswith(f'basicsr train: error: cannot resume {TRAINED} from ')
    assert 'of another size (e.g. encoder.stem.0.weight: checkpoint (4, 12, 3, 3), network (8, 12, 3, 3)' in line
    assert 'restore the network_g of the option file in' in line
    assert sorted(p.name for p in (root / 'experiments').iterdir()) == before


class _Payload:
    def __reduce__(self):
        return os.system, ('touch pwned',)


@pytest.mark.parametrize('damage, message', [
    ('truncated', r'is not a readable PyTorch checkpoint \(RuntimeError: .*truncated by a kill'),
    ('hostile', r'holds Python objects other than tensors, which are refused \(loading them could run code\)'),
    ('other-network', r'does not fit network_g .*1 parameter\(s\) missing .*; pass the weights trained with this'),
], ids=['truncated', 'hostile', 'other-network'])
def test_unusable_pretrained_weights_under_basicsr_test_are_one_line(trained, tmp_path, monkeypatch, capsys, damage,
                                                                    message):
    import re
    root, _ = trained
    weights = tmp_path / 'net_g.pth'
    good = root / 'experiments' / TRAINED / 'models' / 'net_g_latest.pth'
    if damage == 'truncated':
        weights.write_bytes(good.read_bytes()[:300])
    elif damage == 'hostile':
        torch.save({'params': _Payload()}, weights)
    else:
        weights.write_bytes(good.read_bytes())
    opt = options('scoring', 'unused', path={'pretrain_network_g': str(weights)})
    opt['network_g'].update(upsampling='tf1', input_normalization='frame_mean' if damage == 'other-network' else 'none')
    write_yaml(tmp_path / 'test.yml', opt)
    monkeypatch.chdir(tmp_path)
    assert re.search(message, one_line_error(capsys, monkeypatch, ['test', '-opt', 'test.yml']))
    assert not (tmp_path / 'pwned').exists() and not (tmp_path / 'results').exists()


def test_ctrl_c_in_training_is_one_line_exit_130_and_keeps_the_checkpoints(scenes, tmp_path):
    opt = options('interrupted', scenes, model_type='FnFInterruptedModel', plugins=['fnf_interrupt_components'])
    opt['train'].update(total_iter=4, interrupt_after=3)
    write_yaml(tmp_path / 'o.yml', opt)
    code, stderr = run_command(['fnf_basicsr.train', '-opt', 'o.yml'], tmp_path)
    assert code == 130
    assert last_line(stderr) == ('basicsr train: interrupted; the checkpoints saved so far are kept; continue with '
                                 '--auto_resume')
    exp = tmp_path / 'experiments' / 'interrupted'
    assert sorted(os.listdir(exp / 'models')) == ['net_g_2.pth']  # nothing partial: no temporaries
    assert sorted(os.listdir(exp / 'training_states')) == ['2.state']


def test_ctrl_c_in_testing_is_one_line_exit_130_and_gives_the_previous_results_back(scenes, trained, tmp_path):
    root, _ = trained
    opt = options('scored', scenes, model_type='FnFInterruptedModel', plugins=['fnf_interrupt_components'],
                  path={'pretrain_network_g': str(root / 'experiments' / TRAINED / 'models' / 'net_g_latest.pth')})
    opt['network_g']['upsampling'] = 'tf1'
    opt['datasets'] = {'test': {**opt['datasets']['val'], 'name': 'tiny_test'}}
    write_yaml(tmp_path / 'test.yml', opt)
    previous = tmp_path / 'results' / 'scored'
    previous.mkdir(parents=True)
    (previous / 'scores.txt').write_text('an earlier run')
    code, stderr = run_command(['fnf_basicsr.test', '-opt', 'test.yml'], tmp_path)
    assert code == 130 and last_line(stderr) == 'basicsr test: interrupted'
    assert sorted(os.listdir(tmp_path / 'results')) == ['.scored.lock', 'scored']  # no partial or archived run
    assert os.listdir(previous) == ['scores.txt']


def test_training_that_fails_before_its_first_iteration_leaves_no_folder(scenes, tmp_path):
    opt = options('early', scenes)
    opt['datasets']['train']['dataroot'] = str(tmp_path / 'no_such_scenes')
    opt['logger']['use_tb_logger'] = True
    write_yaml(tmp_path / 'o.yml', opt)
    earlier = tmp_path / 'experiments' / 'early'
    earlier.mkdir(parents=True)
    (earlier / 'notes.txt').write_text('an earlier run of this name')
    code, stderr = run_command(['fnf_basicsr.train', '-opt', 'o.yml'], tmp_path)
    assert code == 2 and last_line(stderr).startswith('basicsr train: error: ')
    assert sorted(os.listdir(tmp_path / 'experiments')) == ['.early.lock', 'early']  # the earlier one, renamed back
    assert os.listdir(earlier) == ['notes.txt']
    assert not (tmp_path / 'tb_logger' / 'early').exists()


def test_the_run_record_undoes_only_what_the_run_made(tmp_path):
    kept = tmp_path / 'kept'
    kept.mkdir()
    (kept / 'old.txt').write_text('an earlier run')
    record = compat.RunRecord()
    compat.RUN, saved = record, compat.RUN
    try:
        compat.mkdir_and_rename(str(kept))  # archives the existing folder, makes a fresh one
        compat.mkdir_and_rename(str(tmp_path / 'fresh'))
        (kept / 'new.txt').write_text('written by the run')
    finally:
        compat.RUN = saved
    (tmp_path / 'kept_archived_x').mkdir(exist_ok=True)  # not made by the run: untouched
    record.undo()
    assert sorted(os.listdir(tmp_path)) == ['kept', 'kept_archived_x']
    assert os.listdir(kept) == ['old.txt']
