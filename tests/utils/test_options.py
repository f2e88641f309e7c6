"""Option files and --force_yml overrides (fnf_basicsr.utils.options): the safe loader (no tags, no duplicate keys,
YAML 1.2 exponents), overrides parsed as YAML and checked against the file, numbers checked per key. The
commands' use of it, end to end: tests/test_reliability_training.py."""
import pytest
import yaml

from fnf_basicsr.errors import ConfigError, MissingInputError
from fnf_basicsr.utils.options import (DuplicateKeyError, apply_overrides, check_option_values, check_override_keys,
                                       effective_options, load_option_file, load_yaml, parse_override, split_override)


def test_exponent_floats_are_numbers_and_other_scalars_keep_their_yaml_types():
    loaded = load_yaml('a: 1e-3\nb: 1e3\nc: 1.5E+2\nd: .5e1\ne: 7\nf: 2.5\ng: 1e3x\nh: [1, 2]\ni: true\nj: ~\n')
    assert loaded == {'a': 0.001, 'b': 1000.0, 'c': 150.0, 'd': 5.0, 'e': 7, 'f': 2.5, 'g': '1e3x', 'h': [1, 2],
                      'i': True, 'j': None}
    assert isinstance(loaded['b'], float) and isinstance(loaded['e'], int)
    assert yaml.safe_load('b: 1e3') == {'b': '1e3'}  # what plain YAML 1.1 would have read


def test_a_key_given_twice_is_refused_naming_both_lines_but_merged_keys_may_be_overridden():
    with pytest.raises(DuplicateKeyError, match=r"key 'lr' is given twice \(line 2 and line 4"):
        load_yaml('train:\n  lr: 1\n  beta: 2\n  lr: 3\n')
    merged = load_yaml('base: &base {lr: 1, beta: 2}\ntrain:\n  <<: *base\n  lr: 5\n')
    assert merged['train'] == {'lr': 5, 'beta': 2}


def test_python_tags_are_never_constructed(tmp_path):
    marker = tmp_path / 'created'
    with pytest.raises(yaml.YAMLError, match='python/object/apply'):
        load_yaml(f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    assert not marker.exists()


def test_option_files_that_cannot_be_used_are_one_line_config_errors(tmp_path):
    with pytest.raises(MissingInputError, match=r'option file not found: .*absent\.yml; pass the path'):
        load_option_file(tmp_path / 'absent.yml')
    cases = {'twice.yml': ('a: 1\na: 2\n', r"twice\.yml: key 'a' is given twice"),
             'broken.yml': ('a: [1, 2\n', r'broken\.yml is not valid YAML: '),
             'list.yml': ('- a\n- b\n', r'list\.yml must hold a mapping of options, got list')}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=message) as error:
            load_option_file(tmp_path / name)
        assert '\n' not in str(error.value)
    (tmp_path / 'good.yml').write_text('name: run\ntrain: {total_iter: 1e3}\n')
    assert load_option_file(tmp_path / 'good.yml') == {'name': 'run', 'train': {'total_iter': 1000.0}}


@pytest.mark.parametrize('entry, expected', [
    ('train:total_iter=1000', (['train', 'total_iter'], 1000)),
    ('train:optim_g:lr = 1e-4', (['train', 'optim_g', 'lr'], 1e-4)),
    ('val:metrics=[1, 2]', (['val', 'metrics'], [1, 2])),
    ('path:pretrain_network_g=None', (['path', 'pretrain_network_g'], None)),
    ('path:pretrain_network_g=~', (['path', 'pretrain_network_g'], None)),
    ("name='a=b'", (['name'], 'a=b')),
    ('name="my run"', (['name'], 'my run')),
])
def test_overrides_are_split_into_keys_and_a_yaml_value(entry, expected):
    assert split_override(entry) == expected


@pytest.mark.parametrize('entry, message', [
    ('train:total_iter', 'expected KEY=VALUE'),
    ('name=a=b', "has two '='"),
    ('train:__import__("os")=1', 'is no option key'),
    ('a b=1', 'is no option key'),
    ('name=[1, 2', 'the value is not valid YAML'),
])
def test_overrides_that_cannot_be_meant_are_refused(entry, message):
    with pytest.raises(ConfigError, match=message):
        split_override(entry)


def test_none_in_any_case_is_null_as_basicsr_reads_it():
    assert [parse_override('x', text) for text in ('none', 'None', 'NONE', 'null')] == [None] * 4
    assert parse_override('x', 'nonempty') == 'nonempty'


def options():
    return {'name': 'run', 'num_gpu': 1, 'manual_seed': 0, 'use_tb_logger': True, 'datasets': {'train': {}},
            'train': {'total_iter': 100, 'optim_g': {'type': 'Adam', 'lr': 2e-4, 'betas': [0.9, 0.99]}}}


def test_overrides_set_values_of_the_kind_the_file_holds():
    opt = apply_overrides(options(), ['train:total_iter=1e3', 'use_tb_logger=false', 'name=1e3',
                                      'train:optim_g:betas=[0.5, 0.9]', 'train:optim_g:lr=null', 'new_key=3'], 'o.yml')
    assert opt['train']['total_iter'] == 1000.0 and opt['use_tb_logger'] is False
    assert opt['name'] == '1e3'  # a number given for text stays the text typed
    assert opt['train']['optim_g']['betas'] == [0.5, 0.9] and opt['train']['optim_g']['lr'] is None
    assert opt['new_key'] == 3


@pytest.mark.parametrize('entry, message', [
    ('train:total_iter=many', r"train:total_iter is a number in o\.yml \(100\), got text \('many'\); pass a number"),
    ('use_tb_logger=1', 'use_tb_logger is true or false in o.yml'),
    ('train:optim_g:betas=0.9', r'is a list, e.g. \[1, 2\] in o\.yml'),
    ('train=1', 'is a section'),
    ('val:val_freq=5', "o.yml has no section 'val'"),
])
def test_overrides_of_another_kind_or_a_missing_section_are_refused(entry, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(options(), [entry], 'o.yml')


def test_override_keys_near_an_existing_key_are_typos_unless_known(capsys):
    with pytest.raises(ConfigError, match=r"has no key 'total_iters' there \(did you mean 'total_iter'\?\)"):
        check_override_keys(options(), ['train:total_iters=5'], 'o.yml')
    with pytest.raises(ConfigError, match=r"has no section 'trian' \(did you mean 'train'\?\)"):
        check_override_keys(options(), ['trian:total_iter=5'], 'o.yml')
    with pytest.raises(ConfigError, match="'name' in o.yml is a value, not a section"):
        check_override_keys(options(), ['name:x=5'], 'o.yml')
    check_override_keys(options(), ['train:total_iters=5'], 'o.yml', known_keys=lambda sections, node: {'total_iters'})
    check_override_keys(options(), ['train:warmup_iter=5'], 'o.yml')  # a new key, not close to another
    assert capsys.readouterr().err.count('--force_yml adds') == 2


@pytest.mark.parametrize('section, key, value, message', [
    ('train', 'total_iter', 1.5, r'train:total_iter must be a whole number >= 1, got 1\.5'),
    ('train', 'total_iter', 0, 'train:total_iter must be a whole number >= 1, got 0'),
    ('train', 'total_iter', True, 'train:total_iter must be a whole number >= 1, got True'),
    ('optim_g', 'lr', '1e-3', r"train:optim_g:lr must be a number > 0, got the text '1e-3' \(write it unquoted"),
    ('optim_g', 'lr', -1e-4, r'train:optim_g:lr must be a number > 0, got -0\.0001'),
    ('optim_g', 'lr', float('nan'), 'train:optim_g:lr must be a number > 0, got nan'),
    ('optim_g', 'betas', [0.9, 1.0], r'train:optim_g:betas must be a list of two numbers in \[0, 1\)'),
    ('optim_g', 'betas', [0.9], 'train:optim_g:betas must be a list of 2 items'),
    ('train', 'ema_decay', 1, 'train:ema_decay must be below 1, got 1'),
])
def test_numbers_that_are_no_valid_value_are_refused_naming_the_key(section, key, value, message):
    opt = options()
    (opt['train'] if section == 'train' else opt['train']['optim_g'])[key] = value
    with pytest.raises(ConfigError, match=message):
        check_option_values(opt, 'o.yml')


def test_valid_numbers_are_normalised_and_returned():
    opt = options()
    opt['train'].update(total_iter=1e3, warmup_iter=-1, ema_decay=0.999)
    opt['num_gpu'] = 'auto'
    opt['datasets']['train'].update(batch_size_per_gpu=2.0, crop_size=None)
    checked = check_option_values(opt, 'o.yml')
    assert checked is opt
    assert opt['train']['total_iter'] == 1000 and isinstance(opt['train']['total_iter'], int)
    dataset = opt['datasets']['train']
    assert dataset['batch_size_per_gpu'] == 2 and isinstance(dataset['batch_size_per_gpu'], int)
    assert opt['num_gpu'] == 'auto' and dataset['crop_size'] is None


def test_effective_options_are_the_file_after_its_overrides_checked(tmp_path):
    path = tmp_path / 'train.yml'
    path.write_text(yaml.safe_dump(options()))
    opt = effective_options(path, ['train:total_iter=2e3', 'train:optim_g:lr=1e-3'])
    assert opt['train']['total_iter'] == 2000 and opt['train']['optim_g']['lr'] == 1e-3
    assert effective_options(path) == options()
    with pytest.raises(ConfigError, match='train:total_iter must be a whole number >= 1, got -5'):
        effective_options(path, ['train:total_iter=-5'])
