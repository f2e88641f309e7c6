"""Building a trained network from a checkpoint (fnf_basicsr.inference.checkpoint): BasicSR's weights rule, the
option file found beside the checkpoint or in its experiment folder, the input mode, weights that do not fit."""
import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401  (first: registers our networks with BasicSR)
# isort: split
from fnf_basicsr.archs.direct_arch import DirectUNet
from fnf_basicsr.inference.checkpoint import (CheckpointError, NetworkMismatchError, check_checkpoint_fits,
                                              find_option_file, input_mode_of, load_network, read_state_dict)

TINY_DIRECT = {'type': 'DirectUNet', 'width': 0.0625}


def _option_file(folder, name, network_g=TINY_DIRECT):
    path = folder / name
    path.write_text(yaml.safe_dump({'name': folder.name, 'network_g': network_g}))
    return path


def _checkpoint(tmp_path, content):
    path = tmp_path / 'net.pth'
    torch.save(content, path)
    return path


def test_weights_entry_follows_basicsr_rule(tmp_path):
    params, ema = {'w': torch.zeros(2)}, {'w': torch.ones(2)}
    both = _checkpoint(tmp_path, {'params': params, 'params_ema': ema})
    assert read_state_dict(both)[1] == 'params'  # BasicSR's default param_key_g, not the EMA
    assert torch.equal(read_state_dict(both, 'params_ema')[0]['w'], ema['w'])
    only_params = _checkpoint(tmp_path, {'params': params})
    assert read_state_dict(only_params, 'params_ema')[1] == 'params'  # BasicSR falls back the same way
    bare = _checkpoint(tmp_path, {'module.w': torch.ones(2)})
    state_dict, key = read_state_dict(bare, 'params_ema')
    assert key is None and list(state_dict) == ['w']  # a bare state dict is used as it is
    neither = _checkpoint(tmp_path, {'state': {'w': torch.ones(2)}, 'iter': 3})
    with pytest.raises(CheckpointError, match="neither a 'params_ema' nor a 'params' entry"):
        read_state_dict(neither, 'params_ema')


def test_option_file_is_the_sidecar_else_the_experiment_copy_named_after_the_run(tmp_path):
    experiment = tmp_path / 'experiments' / 'run'
    (experiment / 'models').mkdir(parents=True)
    checkpoint = experiment / 'models' / 'net_g_10.pth'
    checkpoint.touch()
    with pytest.raises(CheckpointError, match='no option file with a network_g entry'):
        find_option_file(checkpoint)
    (experiment / 'notes.yml').write_text('comment: no network here\n')  # not a candidate
    copy = _option_file(experiment, 'train_direct.yml')
    assert find_option_file(checkpoint) == copy  # the only one
    _option_file(experiment, 'other.yml')
    with pytest.raises(CheckpointError, match=r"several option files .*'other.yml', 'train_direct.yml'"):
        find_option_file(checkpoint)
    named = _option_file(experiment, 'run.yml')
    assert find_option_file(checkpoint) == named  # several: the one named after the experiment
    sidecar = _option_file(experiment / 'models', 'net_g_10.yml')
    assert find_option_file(checkpoint) == sidecar  # <stem>.yml beside the weights wins


def test_load_network_rebuilds_the_trained_network_and_weights_of_another_size_do_not_fit(tmp_path):
    torch.manual_seed(0)
    trained = DirectUNet(width=0.0625).eval()
    checkpoint = tmp_path / 'net_g_1.pth'
    torch.save({'params': trained.state_dict()}, checkpoint)
    _option_file(tmp_path, 'run.yml')
    loaded = load_network(checkpoint)
    assert loaded.param_key == 'params' and loaded.input_mode == 'flash_noflash' and not loaded.net.training
    assert loaded.network_opt == TINY_DIRECT and loaded.option_file == tmp_path / 'run.yml'
    x = torch.rand(1, 12, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.net(x), trained(x))
    check_checkpoint_fits(checkpoint, TINY_DIRECT)  # fits: no error
    with pytest.raises(NetworkMismatchError, match='of another size'):
        check_checkpoint_fits(checkpoint, {**TINY_DIRECT, 'width': 0.125})


def test_input_mode_is_the_datasets_one_or_follows_the_channel_count():
    assert input_mode_of({'datasets': {'train': {'input_mode': 'noflash'}}}, 'run.yml', 6) == 'noflash'
    assert input_mode_of({}, 'run.yml', 12) == 'flash_noflash'
    assert input_mode_of({}, 'run.yml', 6) == 'noflash'
    two = {'datasets': {'train': {'input_mode': 'noflash'}, 'val': {'input_mode': 'flash_noflash'}}}
    with pytest.raises(CheckpointError, match='different input_mode values'):
        input_mode_of(two, 'run.yml', 12)
    with pytest.raises(CheckpointError, match='gives 6 input channels but network_g takes in_channels=12'):
        input_mode_of({'datasets': {'val': {'input_mode': 'noflash'}}}, 'run.yml', 12)


def test_the_architecture_guess_names_the_networks_it_could_not_compare(tmp_path, monkeypatch):
    from fnf_basicsr.inference import checkpoint

    class NeedsArguments(torch.nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv = torch.nn.Conv2d(channels, 3, 1)

    own = checkpoint._own_architectures()
    monkeypatch.setattr(checkpoint, '_own_architectures', lambda: own + [('NeedsArguments', NeedsArguments)])
    state_dict = DirectUNet(width=0.0625).state_dict()
    guess = checkpoint._guess_architecture(state_dict, tmp_path / 'net.pth', tmp_path / 'o.yml')
    assert guess.startswith('DirectUNet') and 'not compared: NeedsArguments (no default for every argument)' in guess
