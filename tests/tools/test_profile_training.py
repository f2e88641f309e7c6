"""The training benchmark command's arguments (fnf_basicsr.tools.profile_training), without timing: the synthetic
data size and the devices it runs on. The measurements: tests/utils/test_training_profile.py."""
import argparse

import pytest
import torch

from fnf_basicsr.errors import ConfigError
from fnf_basicsr.tools.profile_training import build_parser, devices, synthetic_spec


def test_synthetic_spec_reads_num_by_size():
    assert synthetic_spec('8x512') == {'num_scenes': 8, 'size': 512}
    assert synthetic_spec('1X64') == {'num_scenes': 1, 'size': 64}
    for text, message in (('8', 'expected NUMxSIZE'), ('ax64', 'expected NUMxSIZE'), ('0x512', 'at least 1 scene'),
                          ('4x32', 'of at least 64 px')):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            synthetic_spec(text)


def test_devices_are_the_choice_or_every_available_one(monkeypatch):
    assert devices('cpu') == ['cpu']
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert devices('all') == ['cpu']
    with pytest.raises(ConfigError, match='--device cuda: no CUDA device is available'):
        devices('cuda')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert devices('all') == ['cpu', 'cuda'] and devices('cuda') == ['cuda']


def test_every_option_is_documented():
    parser = build_parser()
    assert all(action.help for action in parser._actions)
    assert parser.description and parser.epilog
