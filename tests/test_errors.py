"""How commands report failures: known ones in one line with exit 2, anything else with its traceback."""
import pytest
from torch.utils.data import DataLoader, Dataset

from fnf_basicsr.errors import ConfigError, DataError, FnFError, report_errors


def test_a_known_failure_is_one_line_on_stderr_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        with report_errors('tool'):
            raise ConfigError('a.yml: crop_size 0\nmust be >= 1')
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == 'tool: error: a.yml: crop_size 0 must be >= 1\n'


@pytest.mark.parametrize('raised, line', [(KeyboardInterrupt(), 'tool: interrupted\n'),
                                          (KeyboardInterrupt('partial output removed'),
                                           'tool: interrupted; partial output removed\n')], ids=['plain', 'detail'])
def test_ctrl_c_is_one_line_and_exit_130(capsys, raised, line):
    with pytest.raises(SystemExit) as exit_info:
        with report_errors('tool'):
            raise raised
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == line


def test_an_unexpected_exception_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        with report_errors('tool'):
            1 / 0


def test_known_failures_are_also_the_builtin_exceptions_callers_catch():
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(ConfigError, FnFError)


class BrokenSamples(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise DataError(f'sample_{index}.png: truncated; write it again')


def test_a_failure_in_a_dataloader_worker_is_reported_by_its_own_message(capsys):
    with pytest.raises(SystemExit):
        with report_errors('basicsr train'):
            next(iter(DataLoader(BrokenSamples(), num_workers=1)))
    assert capsys.readouterr().err == 'basicsr train: error: sample_0.png: truncated; write it again\n'
