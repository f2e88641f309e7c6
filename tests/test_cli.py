"""The `basicsr` command: help text and the errors users hit before BasicSR starts."""
import re

import pytest
import torch

from fnf_basicsr import cli
from fnf_basicsr.errors import FnFError
from conftest import write_yaml


def test_help_explains_commands_launchers_and_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['--help'])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ('train', 'test', 'torchrun', '--launcher pytorch', 'slurm', 'plugins'):
        assert word in text


def test_train_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(['train', '--help'])
    text = capsys.readouterr().out
    for option in ('-opt', '--launcher', '--auto_resume', '--debug', '--force_yml'):
        assert option in text


def one_line_error(capsys, argv):
    """Run the command, expect a known failure: exit 2 and one line on stderr, which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in lines[0], lines
    return lines[0]


def test_missing_option_file_names_the_file_and_the_fix(tmp_path, capsys):
    line = one_line_error(capsys, ['train', '-opt', str(tmp_path / 'nope.yml')])
    assert re.match(r'basicsr train: error: option file not found: .*nope\.yml; .*-opt options/synthetic', line)


def test_option_file_must_be_a_mapping(tmp_path, capsys):
    (tmp_path / 'list.yml').write_text('- a\n- b\n')
    assert 'must hold a mapping' in one_line_error(capsys, ['test', '-opt', str(tmp_path / 'list.yml')])


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message shown on machines without CUDA')
def test_gpu_request_without_cuda_says_how_to_run_on_cpu(tmp_path, capsys):
    write_yaml(tmp_path / 'gpu.yml', {'name': 'x', 'num_gpu': 1})
    line = one_line_error(capsys, ['train', '-opt', str(tmp_path / 'gpu.yml')])
    assert re.search(r'num_gpu: 1 but this machine has no CUDA device; set num_gpu: 0', line)


def test_basicsr_receives_its_own_argument_names():
    parser = cli.build_parser()
    args = parser.parse_args(['train', '-opt', 'x.yml', '--auto_resume', '--local-rank', '1',
                              '--force_yml', 'train:total_iter=10'])
    assert cli.basicsr_argv(args, 'train') == ['-opt', 'x.yml', '--launcher', 'none', '--local_rank', '1',
                                               '--auto_resume', '--force_yml', 'train:total_iter=10']


def tiny_options(**changes):
    opt = {'name': 'tiny', 'model_type': 'FnFModel', 'num_gpu': 0,
           'datasets': {'test': {'name': 't', 'type': 'FlashNoFlashDataset', 'dataroot': 'nowhere'}},
           'network_g': {'type': 'DeepFnF', 'width': 0.0625, 'num_basis': 4},
           'path': {'pretrain_network_g': None},
           'train': {'total_iter': 4, 'pixel_opt': {'type': 'MSELoss'}, 'optim_g': {'type': 'Adam', 'lr': 1e-3}}}
    opt.update(changes)
    return opt


@pytest.mark.parametrize('forced, message', [
    ('train:total_itr=10', r"has no key 'total_itr' there \(did you mean 'total_iter'\?\)"),
    ('trian:total_iter=10', r"has no section 'trian' \(did you mean 'train'\?\)"),
    ('train:total_iter', r"expected KEY=VALUE"),
], ids=['leaf-typo', 'section-typo', 'no-value'])
def test_force_yml_typos_are_refused(tmp_path, capsys, forced, message):
    write_yaml(tmp_path / 'o.yml', tiny_options())
    assert re.search(message, one_line_error(capsys, ['train', '-opt', str(tmp_path / 'o.yml'), '--force_yml', forced]))


def test_force_yml_may_add_a_key_that_is_no_near_miss(tmp_path):
    opt = tiny_options()
    cli.check_forced_keys(opt, ['train:ema_decay=0.999'], 'o.yml')  # BasicSR's own example: no error
    # ... while the same misspelt next to the key it misses is refused
    opt['train']['ema_decay'] = 0.9
    with pytest.raises(FnFError, match=r"did you mean 'ema_decay'"):
        cli.check_forced_keys(opt, ['train:ema_decy=0.999'], 'o.yml')


@pytest.mark.parametrize('changes, message', [
    ({'plugins': ['no_such_plugin_pkg']}, r"plugins: cannot import 'no_such_plugin_pkg'.*install that package"),
    ({'network_g': {'type': 'DeepFNF'}},
     r"network_g 'DeepFNF' is not registered \(did you mean 'DeepFnF'\?\).*plugins:"),
    ({'model_type': 'FnfModel'}, r"model_type 'FnfModel' is not registered"),
    ({'path': {'pretrain_network_g': 'missing.pth'}}, r"path:pretrain_network_g missing.pth does not exist"),
], ids=['plugin', 'network', 'model', 'weights'])
def test_unknown_components_and_missing_weights_are_named(tmp_path, capsys, changes, message):
    write_yaml(tmp_path / 'o.yml', tiny_options(**changes))
    assert re.search(message, one_line_error(capsys, ['train', '-opt', str(tmp_path / 'o.yml')]))


def test_testing_without_weights_would_score_an_untrained_network_and_is_refused(tmp_path, capsys):
    write_yaml(tmp_path / 'o.yml', tiny_options())
    line = one_line_error(capsys, ['test', '-opt', str(tmp_path / 'o.yml')])
    assert 'randomly initialised network; set it to the trained weights' in line
    # A parameter-free reference needs no weights.
    opt = tiny_options(network_g={'type': 'JointBilateralFnF'})
    cli.check_weights(opt, 'o.yml', 'test')


def test_a_second_training_run_of_the_same_name_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_yaml(tmp_path / 'o.yml', tiny_options())
    with cli.ExperimentLock(str(tmp_path), 'tiny'):
        line = one_line_error(capsys, ['train', '-opt', 'o.yml'])
    assert "another training run named 'tiny' is running" in line


def test_a_converted_checkpoint_needs_the_network_options_it_was_converted_with(tmp_path, capsys):
    weights = tmp_path / 'release.pth'
    weights.write_bytes(b'')
    write_yaml(tmp_path / 'release.yml', {'network_g': {'type': 'DeepFnF', 'upsampling': 'tf1',
                                                        'tent_padding': 'zeros'}})
    write_yaml(tmp_path / 'o.yml', tiny_options(network_g={'type': 'DeepFnF'},
                                                path={'pretrain_network_g': str(weights)}))
    line = one_line_error(capsys, ['test', '-opt', str(tmp_path / 'o.yml')])
    assert re.search(r'release\.yml, which sets tent_padding: zeros, upsampling: tf1; copy that network_g block', line)
    opt = tiny_options(network_g={'type': 'DeepFnF', 'upsampling': 'tf1', 'tent_padding': 'zeros'})
    cli.check_sidecar_network(opt, 'o.yml', str(weights))  # the same options: accepted
