"""Reading a YAML option file, with one-line errors that name the file and the fix."""
import os

import yaml

from fnf_basicsr.errors import ConfigError, MissingInputError


def load_option_file(path, what='the path of a YAML option file', example='options/synthetic/train_fnf.yml'):
    """The option mapping of ``path``; ``what`` and ``example`` word the fix when the file is missing."""
    if not os.path.isfile(path):
        raise MissingInputError(f'option file not found: {path}; pass {what}, e.g. -opt {example}')
    with open(path, encoding='utf-8') as handle:
        try:
            opt = yaml.safe_load(handle)
        except yaml.YAMLError as err:
            raise ConfigError(f'{path} is not valid YAML: {" ".join(str(err).split())}') from None
    if not isinstance(opt, dict):
        raise ConfigError(f'{path} must hold a mapping of options, got {type(opt).__name__}.')
    return opt
