"""The `basicsr` command: help text and the errors users hit before BasicSR starts."""
import pytest
import torch

from fnf_basicsr import cli
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


def test_missing_option_file_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(SystemExit, match=r'option file not found: .*nope\.yml[\s\S]*-opt options/synthetic'):
        cli.main(['train', '-opt', str(tmp_path / 'nope.yml')])


def test_option_file_must_be_a_mapping(tmp_path):
    (tmp_path / 'list.yml').write_text('- a\n- b\n')
    with pytest.raises(SystemExit, match='must hold a mapping'):
        cli.main(['test', '-opt', str(tmp_path / 'list.yml')])


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message shown on machines without CUDA')
def test_gpu_request_without_cuda_says_how_to_run_on_cpu(tmp_path):
    write_yaml(tmp_path / 'gpu.yml', {'name': 'x', 'num_gpu': 1})
    with pytest.raises(SystemExit, match=r'num_gpu: 1 but this machine has no CUDA device[\s\S]*num_gpu: 0'):
        cli.main(['train', '-opt', str(tmp_path / 'gpu.yml')])


def test_basicsr_receives_its_own_argument_names():
    parser = cli.build_parser()
    args = parser.parse_args(['train', '-opt', 'x.yml', '--auto_resume', '--local-rank', '1',
                              '--force_yml', 'train:total_iter=10'])
    assert cli.basicsr_argv(args, 'train') == ['-opt', 'x.yml', '--launcher', 'none', '--local_rank', '1',
                                               '--auto_resume', '--force_yml', 'train:total_iter=10']
