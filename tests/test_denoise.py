"""fnf-denoise end to end on generated captures with tiny checkpoints built from a seed."""
import contextlib
import re
import shutil

import cv2
import numpy as np
import pytest
import torch
import yaml

from fnf_basicsr.archs.deepfnf_arch import DeepFnF
from fnf_basicsr.data.degradation import FLASH_GAIN, assemble_input
from fnf_basicsr.data.faid import encode_png16
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT, add_noise
from fnf_basicsr.data.synthetic import SPLIT_SEED_OFFSETS, render_scene
from fnf_basicsr.denoise import auto_gain, build_parser, main, noise_parameters
from fnf_basicsr.inference.capture_io import CapturePair, read_image
from fnf_basicsr.utils.rendering import render_srgb, srgb_degamma, srgb_gamma

SIZE = (96, 128)  # height, width
TINY_DEEPFNF = {'type': 'DeepFnF', 'width': 0.0625, 'num_basis': 4, 'kernel_size': 5, 'upsample': 2}
NOISE_ARGS = ['--sig-read', str(TEST_SIG_READ), '--sig-shot', str(TEST_SIG_SHOT)]


def save_experiment(root, name, network_opt, seed=0, extra_options=None):
    """A BasicSR-style experiment folder with a seeded, untrained checkpoint; returns the .pth path."""
    from basicsr.utils.registry import ARCH_REGISTRY  # after fnf_basicsr's compatibility fixes (imports above)
    torch.manual_seed(seed)
    options = {key: value for key, value in network_opt.items() if key != 'type'}
    net = ARCH_REGISTRY.get(network_opt['type'])(**options)
    models = root / 'experiments' / name / 'models'
    models.mkdir(parents=True)
    torch.save({'params': net.state_dict()}, models / 'net_g_latest.pth')
    options = {'name': name, 'network_g': network_opt, **(extra_options or {})}
    (models.parent / f'{name}.yml').write_text(yaml.safe_dump(options, sort_keys=False))
    return models / 'net_g_latest.pth'


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """Checkpoints and a dimmed, noisy synthetic capture (16-bit linear PNGs with FAID metadata)."""
    root = tmp_path_factory.mktemp('denoise')
    ambient, flash_only, metadata = render_scene(SPLIT_SEED_OFFSETS['test'], max(SIZE))
    ambient, flash_only = ambient[:SIZE[0]], flash_only[:SIZE[0]]
    generator = torch.Generator().manual_seed(0)
    captures = root / 'captures'
    captures.mkdir()
    for name, clean in (('scene_noflash.png', 0.05 * ambient), ('scene_flash.png', FLASH_GAIN * flash_only
                                                                  + 0.05 * ambient)):
        noisy = add_noise(torch.from_numpy(clean), TEST_SIG_READ, TEST_SIG_SHOT, generator).clamp(0, 1)
        (captures / name).write_bytes(encode_png16(np.round(noisy.numpy() * 65535).astype(np.uint16),
                                                   metadata.to_text()))
    return {'root': root, 'noflash': captures / 'scene_noflash.png', 'flash': captures / 'scene_flash.png',
            'weights': save_experiment(root, 'tiny', TINY_DEEPFNF)}


@contextlib.contextmanager
def refused(capsys, pattern):
    """The block must exit 2 with one line on stderr, no traceback, matching ``pattern``; yields that line."""
    line = []
    with pytest.raises(SystemExit) as exited:
        yield line
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(lines) == 1 and lines[0].startswith('fnf-denoise: error: '), lines
    assert re.search(pattern, lines[0]), lines[0]
    line.append(lines[0])


def run_cli(workspace, out, *extra, noise=True):
    args = ['--noflash', str(workspace['noflash']), '--flash', str(workspace['flash']),
            '--weights', str(workspace['weights']), '--out', str(out), '--no-progress', *extra]
    return main(args + (NOISE_ARGS if noise else []))


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def expected_linear(workspace, network_opt=TINY_DEEPFNF, seed=0):
    """What the network returns for the capture, computed here without the command."""
    torch.manual_seed(seed)
    net = DeepFnF(**{k: v for k, v in network_opt.items() if k != 'type'}).eval()
    noflash, flash = (torch.from_numpy(read_image(workspace[key]).pixels).permute(2, 0, 1)
                      for key in ('noflash', 'flash'))
    with torch.inference_mode():
        return net(assemble_input(noflash, flash, TEST_SIG_READ, TEST_SIG_SHOT, 'flash_noflash')[None])[0]


def test_denoises_a_pair_to_an_8_bit_png_and_linear_tiff(workspace, tmp_path, capsys):
    out = tmp_path / 'result.png'
    assert run_cli(workspace, out, '--save-linear') == 0
    printed = capsys.readouterr().out
    assert 'gain' in printed and 'automatic' in printed and f'wrote {out}' in printed
    linear = read_image(tmp_path / 'result_linear.tiff').pixels
    torch.testing.assert_close(torch.from_numpy(linear).permute(2, 0, 1), expected_linear(workspace))
    image = read_rgb(out)
    assert image.dtype == np.uint8 and image.shape == (*SIZE, 3)
    color_matrix = read_image(workspace['noflash']).color_matrix
    linear_chw = torch.from_numpy(linear).permute(2, 0, 1)
    gain = auto_gain(linear_chw, color_matrix)
    rendered = render_srgb(linear_chw[None], gain, torch.from_numpy(color_matrix))[0].permute(1, 2, 0).numpy()
    assert np.abs(image.astype(int) - np.round(np.clip(rendered, 0, 1) * 255)).max() <= 1
    # The automatic gain puts the 99th percentile of luminance at sRGB 0.9.
    luminance = np.einsum('c,chw->hw', np.array([0.2126, 0.7152, 0.0722]) @ color_matrix, linear_chw.numpy())
    assert np.percentile(luminance * gain, 99) == pytest.approx(float(srgb_degamma(torch.tensor(0.9))), rel=1e-4)


def test_16_bit_output_with_a_given_gain(workspace, tmp_path):
    out = tmp_path / 'result16.png'
    linear = expected_linear(workspace)
    gain = 0.5 * auto_gain(linear, np.eye(3))  # an untrained network's output is ~1e-6: a large gain
    run_cli(workspace, out, '--bits', '16', '--gain', repr(gain), '--color-matrix', *'1 0 0 0 1 0 0 0 1'.split())
    image = read_rgb(out)
    assert image.dtype == np.uint16 and image.shape == (*SIZE, 3)
    expected = srgb_gamma(gain * linear).clamp(0, 1).permute(1, 2, 0).numpy()
    assert expected.max() > 0.5  # the comparison is not between black images
    assert np.abs(image.astype(np.int64) - np.round(expected * 65535)).max() <= 1


def test_noise_is_estimated_when_not_given(workspace, tmp_path, capsys):
    run_cli(workspace, tmp_path / 'est.png', noise=False)
    line = next(line for line in capsys.readouterr().out.splitlines() if 'noise:' in line)
    assert 'estimated from the no-flash and flash photos' in line
    sig_read = float(line.split('sig_read=')[1].split()[0])
    sig_shot = float(line.split('sig_shot=')[1].split()[0])
    print(f'estimated on the 128x96 pair: sig_read x{sig_read / TEST_SIG_READ:.3f}, '
          f'sig_shot x{sig_shot / TEST_SIG_SHOT:.3f}')
    assert abs(sig_read / TEST_SIG_READ - 1) < 0.2 and abs(sig_shot / TEST_SIG_SHOT - 1) < 0.2


def test_noise_parameters_given_then_from_metadata_then_estimated(workspace, capsys):
    pixels = read_image(workspace['noflash']).pixels
    pair = CapturePair(pixels, None, np.eye(3, dtype=np.float32), workspace['noflash'], noise=(0.002, 0.01))
    assert noise_parameters(pair, 0.003, 0.02) == (0.003, 0.02)
    assert noise_parameters(pair) == (0.002, 0.01)
    assert 'DNG NoiseProfile of scene_noflash.png' in capsys.readouterr().out
    pair.noise = None
    estimated = noise_parameters(pair)
    assert 'estimated from the no-flash photo)' in capsys.readouterr().out
    assert all(value > 0 for value in estimated)


def test_tiled_run_matches_whole_image_run(workspace, tmp_path):
    run_cli(workspace, tmp_path / 'whole.png', '--tile', '0', '--save-linear')
    run_cli(workspace, tmp_path / 'tiled.png', '--tile', '64', '--overlap', '32', '--save-linear')
    whole = read_image(tmp_path / 'whole_linear.tiff').pixels
    tiled = read_image(tmp_path / 'tiled_linear.tiff').pixels
    psnr = 10 * np.log10(np.abs(whole).max() ** 2 / np.mean((tiled - whole) ** 2))
    assert psnr >= 45


def test_channels_last_inference_gives_the_same_result(workspace, tmp_path):
    run_cli(workspace, tmp_path / 'nchw.png', '--save-linear', '--channels-last', 'off')
    run_cli(workspace, tmp_path / 'cl.png', '--save-linear', '--channels-last')
    nchw = read_image(tmp_path / 'nchw_linear.tiff').pixels
    channels_last = read_image(tmp_path / 'cl_linear.tiff').pixels
    np.testing.assert_allclose(channels_last, nchw, rtol=1e-4, atol=1e-6)


def test_bf16_inference_is_close_to_float32_and_says_so(workspace, tmp_path, capsys):
    run_cli(workspace, tmp_path / 'fp32.png', '--save-linear', '--precision', 'fp32')
    assert 'precision: fp32 (set in the options)' in capsys.readouterr().out
    run_cli(workspace, tmp_path / 'bf16.png', '--save-linear', '--precision', 'bf16')
    assert 'precision: bf16' in capsys.readouterr().out
    fp32 = read_image(tmp_path / 'fp32_linear.tiff').pixels
    bf16 = read_image(tmp_path / 'bf16_linear.tiff').pixels
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32)  # autocast really ran
    psnr = 10 * np.log10(np.abs(fp32).max() ** 2 / np.mean((bf16 - fp32) ** 2))
    assert psnr >= 30  # bf16 keeps 8 bits of mantissa in the convolutions


def test_8_bit_srgb_inputs(workspace, tmp_path, capsys):
    folder = tmp_path / 'jpegs'
    folder.mkdir()
    for key in ('noflash', 'flash'):
        srgb = srgb_gamma(torch.from_numpy(read_image(workspace[key]).pixels) * 10).clamp(0, 1).numpy()
        cv2.imwrite(str(folder / f'phone_{key}.jpg'), cv2.cvtColor(np.round(srgb * 255).astype(np.uint8),
                                                                   cv2.COLOR_RGB2BGR))
    main(['--input-dir', str(folder), '--out-dir', str(tmp_path / 'out'), '--weights', str(workspace['weights']),
          '--no-progress', *NOISE_ARGS])
    assert '8-bit, sRGB, linearised' in capsys.readouterr().out
    assert read_rgb(tmp_path / 'out' / 'phone_denoised.png').shape == (*SIZE, 3)


def test_folder_mode_with_faid_and_noflash_names(workspace, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    shutil.copy(workspace['noflash'], folder / 'A_ambient.png')
    shutil.copy(workspace['flash'], folder / 'A_flash.png')
    shutil.copy(workspace['noflash'], folder / 'B_noflash.png')
    shutil.copy(workspace['flash'], folder / 'B_flash.png')
    main(['--input-dir', str(folder), '--out-dir', str(tmp_path / 'out'), '--weights', str(workspace['weights']),
          '--flash-only-input', '--no-progress', *NOISE_ARGS])
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['A_denoised.png', 'B_denoised.png']
    assert 'flash light only' in capsys.readouterr().out


def test_refuses_to_overwrite_an_output_unless_asked(workspace, tmp_path, capsys):
    out = tmp_path / 'once.png'
    run_cli(workspace, out)
    first = out.read_bytes()
    color_matrix = read_image(workspace['noflash']).color_matrix
    brighter = ['--gain', repr(4 * auto_gain(expected_linear(workspace), color_matrix))]
    with refused(capsys, r'once\.png already exists; pass --overwrite'):
        run_cli(workspace, out, *brighter)
    assert out.read_bytes() == first
    run_cli(workspace, out, *brighter, '--overwrite')
    assert out.read_bytes() != first


def test_refuses_to_write_onto_an_input(workspace, tmp_path, capsys):
    copy = tmp_path / 'scene_noflash.png'
    shutil.copy(workspace['noflash'], copy)
    before = copy.read_bytes()
    with refused(capsys, 'is the input'):
        main(['--noflash', str(copy), '--flash', str(workspace['flash']), '--weights', str(workspace['weights']),
              '--out', str(copy), '--overwrite', '--no-progress', *NOISE_ARGS])
    assert copy.read_bytes() == before


@pytest.mark.parametrize('change, message', [
    (lambda ws, tmp: {'noflash': tmp / 'missing.png'}, 'missing.png does not exist'),
    (lambda ws, tmp: {'flash': _cropped(ws['flash'], tmp)}, 'misaligned inputs'),
    (lambda ws, tmp: {'noflash': _eight_bit(ws['noflash'], tmp), 'flash': _eight_bit(ws['flash'], tmp),
                      'extra': ['--encoding', 'linear']}, '8-bit image, but --encoding linear'),
    (lambda ws, tmp: {'noflash': _bad_metadata(ws['noflash'], tmp)}, 'unreadable color metadata'),
], ids=['missing-file', 'different-sizes', 'wrong-bit-depth', 'bad-metadata'])
def test_input_errors_name_the_problem(workspace, tmp_path, change, message, capsys):
    changed = change(workspace, tmp_path)
    case = {**workspace, **changed}
    with refused(capsys, message):
        run_cli(case, tmp_path / 'out.png', *changed.get('extra', []))


def _cropped(path, tmp):
    image = read_image(path).pixels[:, :-32]
    target = tmp / 'cropped_flash.png'
    target.write_bytes(encode_png16(np.round(image * 65535).astype(np.uint16)))
    return target


def _eight_bit(path, tmp):
    target = tmp / f'{path.stem}_8bit.png'
    cv2.imwrite(str(target), (read_rgb(path) // 257).astype(np.uint8))
    return target


def _bad_metadata(path, tmp):
    target = tmp / 'bad_noflash.png'
    target.write_bytes(encode_png16(read_rgb(path), {'Comment': 'taken with a phone', 'Description': '21'}))
    return target


def test_checkpoint_without_option_file(workspace, tmp_path, capsys):
    bare = tmp_path / 'net_g_1000.pth'
    shutil.copy(workspace['weights'], bare)
    case = {**workspace, 'weights': bare}
    with refused(capsys, r'no option file with a network_g entry .* pass it with --opt'):
        run_cli(case, tmp_path / 'a.png')
    run_cli(case, tmp_path / 'a.png', '--opt', str(workspace['weights'].parents[1] / 'tiny.yml'))
    assert (tmp_path / 'a.png').is_file()


def test_checkpoint_of_another_architecture(workspace, tmp_path, capsys):
    kpn = save_experiment(tmp_path, 'kpn', {'type': 'KPN', 'width': 0.0625, 'kernel_size': 5})
    tiny_options = str(workspace['weights'].parents[1] / 'tiny.yml')
    with refused(capsys, 'expected DeepFnF') as line:
        run_cli({**workspace, 'weights': kpn}, tmp_path / 'a.png', '--opt', tiny_options)
    message = line[0]
    assert str(kpn) in message and 'expected DeepFnF(' in message
    assert "seems to be for: network_g {'type': 'KPN'" in message and 'kpn.yml' in message
    assert '--opt' in message
    # Without an option file next to it, the parameter names tell (KPN and DirectUNet share theirs).
    bare = tmp_path / 'loose' / 'net_g_5.pth'
    bare.parent.mkdir()
    shutil.copy(kpn, bare)
    with refused(capsys, r'seems to be for: one of DirectUNet, KPN \(100% of') as line:
        run_cli({**workspace, 'weights': bare}, tmp_path / 'a.png', '--opt', tiny_options)
    assert 'missing' in line[0]


def test_checkpoint_of_another_size(workspace, tmp_path, capsys):
    wide = save_experiment(tmp_path, 'wide', {**TINY_DEEPFNF, 'width': 0.125})
    bare = tmp_path / 'net_g_wide.pth'
    shutil.copy(wide, bare)
    with refused(capsys, r'parameter\(s\) of another size \(encoder.stem.0.weight: checkpoint '
                                         r'\(8, 12, 3, 3\), network \(4, 12, 3, 3\)'):
        run_cli({**workspace, 'weights': bare}, tmp_path / 'a.png', '--opt',
                str(workspace['weights'].parents[1] / 'tiny.yml'))


def test_unreadable_checkpoint_and_missing_key(workspace, tmp_path, capsys):
    junk = tmp_path / 'models' / 'net_g_1.pth'
    junk.parent.mkdir()
    junk.write_bytes(b'not a checkpoint')
    shutil.copy(workspace['weights'].parents[1] / 'tiny.yml', tmp_path)
    with refused(capsys, 'not a readable PyTorch checkpoint'):
        run_cli({**workspace, 'weights': junk}, tmp_path / 'a.png')
    # BasicSR's rule (path.param_key_g): a checkpoint without the requested entry loads 'params'.
    assert run_cli(workspace, tmp_path / 'a.png', '--param-key', 'params_ema') == 0
    run_cli(workspace, tmp_path / 'b.png')
    assert (tmp_path / 'a.png').read_bytes() == (tmp_path / 'b.png').read_bytes()


def test_flash_network_needs_the_flash_photo(workspace, tmp_path, capsys):
    with refused(capsys, 'give the flash photo with --flash'):
        main(['--noflash', str(workspace['noflash']), '--weights', str(workspace['weights']),
              '--out', str(tmp_path / 'a.png'), *NOISE_ARGS])


def test_noflash_only_network_runs_without_flash(workspace, tmp_path, capsys):
    weights = save_experiment(tmp_path, 'nf', {**TINY_DEEPFNF, 'in_channels': 6, 'use_scale_map': False},
                              extra_options={'datasets': {'val': {'input_mode': 'noflash'}}})
    main(['--noflash', str(workspace['noflash']), '--weights', str(weights), '--out', str(tmp_path / 'a.png'),
          '--no-progress', *NOISE_ARGS])
    assert read_rgb(tmp_path / 'a.png').shape == (*SIZE, 3)
    burst = save_experiment(tmp_path, 'burst', TINY_DEEPFNF,
                            extra_options={'datasets': {'val': {'input_mode': 'noflash_burst'}}})
    with refused(capsys, 'noflash_burst'):
        run_cli({**workspace, 'weights': burst}, tmp_path / 'b.png')


@pytest.mark.parametrize('args', [
    ['--sig-read', '0.01'],
    ['--tile', '100'],
    ['--gain', '-1'],
    ['--out-dir', 'x'],
], ids=['one-noise-parameter', 'tile-not-multiple-of-32', 'negative-gain', 'mixed-modes'])
def test_usage_errors_exit_with_status_2(workspace, tmp_path, args, capsys):
    with pytest.raises(SystemExit) as error:
        main(['--noflash', str(workspace['noflash']), '--flash', str(workspace['flash']), '--weights',
              str(workspace['weights']), '--out', str(tmp_path / 'a.png'), *args])
    assert error.value.code == 2
    assert 'error:' in capsys.readouterr().err


def test_output_must_be_png_and_help_lists_the_formats(capsys):
    with pytest.raises(SystemExit) as error:
        main(['--noflash', 'a.png', '--flash', 'b.png', '--weights', 'w.pth', '--out', 'a.jpg'])
    assert error.value.code == 2 and 'give --out a .png path' in capsys.readouterr().err
    text = build_parser().format_help()
    for word in ('--flash-only-input', '--exposure-ratio', 'DNG', '_noflash', '_ambient', '--save-linear'):
        assert word in text


def test_capture_smaller_than_the_network_takes_is_refused(workspace, tmp_path, capsys):
    small = tmp_path / 'small.png'
    small.write_bytes(encode_png16(np.full((16, 40, 3), 1000, np.uint16)))
    flash = tmp_path / 'small_flash.png'
    flash.write_bytes(encode_png16(np.full((16, 40, 3), 3000, np.uint16)))
    with refused(capsys, f'{small} is 40x16 pixels; the network needs at least 32x32'):
        run_cli({**workspace, 'noflash': small, 'flash': flash}, tmp_path / 'out.png')
    assert not (tmp_path / 'out.png').exists()


def test_nan_in_a_float_capture_is_refused_not_a_black_picture(workspace, tmp_path, capsys):
    from fnf_basicsr.inference.capture_io import encode_float_tiff
    linear = read_image(workspace['noflash']).pixels.copy()
    linear[10, 20, 0] = np.nan
    noflash = tmp_path / 'nan_noflash.tiff'
    noflash.write_bytes(encode_float_tiff(linear))
    flash = tmp_path / 'flash.tiff'
    flash.write_bytes(encode_float_tiff(read_image(workspace['flash']).pixels))
    with refused(capsys, f'{noflash}: 1 NaN or Inf sample'):
        run_cli({**workspace, 'noflash': noflash, 'flash': flash}, tmp_path / 'out.png', '--gain', '2')
    assert not (tmp_path / 'out.png').exists()


def test_output_under_a_regular_file_is_refused_before_denoising(workspace, tmp_path, monkeypatch, capsys):
    from fnf_basicsr import denoise
    monkeypatch.setattr(denoise, 'denoise_capture', lambda *args: pytest.fail('denoised before the check'))
    (tmp_path / 'file').write_text('x')
    with refused(capsys, 'is a file, not a folder'):
        run_cli(workspace, tmp_path / 'file' / 'out.png')


def test_missing_output_folder_is_created(workspace, tmp_path):
    assert run_cli(workspace, tmp_path / 'new' / 'folder' / 'out.png') == 0
    assert (tmp_path / 'new' / 'folder' / 'out.png').is_file()


# --- issue 20: every known failure exits 2 in one line; inputs checked before the network runs ----------------

def test_known_errors_exit_2_not_1(workspace, tmp_path, capsys):
    with refused(capsys, 'missing.png does not exist'):
        run_cli({**workspace, 'noflash': tmp_path / 'missing.png'}, tmp_path / 'out.png')


@pytest.mark.parametrize('flag, value', [('--gain', 'inf'), ('--gain', '1e-300'), ('--gain', 'nan'),
                                         ('--sig-read', 'inf'), ('--sig-shot', '1e-30'), ('--sig-read', '-1'),
                                         ('--exposure-ratio', 'inf'), ('--exposure-ratio', '0'),
                                         ('--exposure-ratio', '1e-9')])
def test_absurd_numbers_are_refused_naming_the_flag(workspace, tmp_path, capsys, flag, value):
    values = {'--sig-read': '0.01', '--sig-shot': '0.01', flag: value}
    with pytest.raises(SystemExit) as exited:
        run_cli(workspace, tmp_path / 'out.png', *[part for item in values.items() for part in item], noise=False)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(lines) == 1 and f'{flag} must be a finite number in' in lines[0]
    assert not (tmp_path / 'out.png').exists()


def test_black_no_flash_is_refused_before_the_network_even_with_a_gain(workspace, tmp_path, capsys, monkeypatch):
    from fnf_basicsr import denoise
    monkeypatch.setattr(denoise, 'denoise_capture', lambda *args: pytest.fail('the network ran'))
    black = tmp_path / 'black.png'
    black.write_bytes(encode_png16(np.zeros((*SIZE, 3), np.uint16)))
    with refused(capsys, 'black.png is black'):
        run_cli({**workspace, 'noflash': black}, tmp_path / 'out.png', '--gain', '4')
    assert not (tmp_path / 'out.png').exists()


def test_swapped_inputs_are_refused(workspace, tmp_path, capsys):
    with refused(capsys, 'scene_flash.png is brighter than the flash photo .*scene_noflash.png.*look swapped'):
        run_cli({**workspace, 'noflash': workspace['flash'], 'flash': workspace['noflash']}, tmp_path / 'out.png')


def test_faid_names_in_single_pair_mode_get_the_flash_only_hint(workspace, tmp_path, capsys):
    shutil.copy(workspace['noflash'], tmp_path / 'A_ambient.png')
    shutil.copy(workspace['flash'], tmp_path / 'A_flash.png')
    run_cli({**workspace, 'noflash': tmp_path / 'A_ambient.png', 'flash': tmp_path / 'A_flash.png'},
            tmp_path / 'out.png')
    assert 'pass --flash-only-input' in capsys.readouterr().out
    # a FAID flash-light-only file darker than its ambient: without the flag it reads as swapped, and says so
    shutil.copy(workspace['flash'], tmp_path / 'F_ambient.png')
    shutil.copy(workspace['noflash'], tmp_path / 'F_flash.png')
    with refused(capsys, 'look swapped.*pass --flash-only-input'):
        run_cli({**workspace, 'noflash': tmp_path / 'F_ambient.png', 'flash': tmp_path / 'F_flash.png'},
                tmp_path / 'out2.png')


def test_folder_mode_reports_every_file_it_did_not_pair(workspace, tmp_path, capsys):
    folder = tmp_path / 'in'
    (folder / 'nested').mkdir(parents=True)
    shutil.copy(workspace['noflash'], folder / 'B_noflash.png')
    shutil.copy(workspace['flash'], folder / 'B_flash.png')
    shutil.copy(workspace['noflash'], folder / 'nested' / 'C_noflash.png')
    shutil.copy(workspace['noflash'], folder / 'D_NoFlash.png')
    shutil.copy(workspace['flash'], folder / 'D_Flash.png')
    (folder / 'readme.txt').write_text('notes')
    main(['--input-dir', str(folder), '--out-dir', str(tmp_path / 'out'), '--weights', str(workspace['weights']),
          '--no-progress', *NOISE_ARGS])
    printed = capsys.readouterr().out
    for name, reason in (('nested/', 'not from sub-folders'), ('D_NoFlash.png', 'rename it to D_noflash.png'),
                         ('D_Flash.png', 'rename it to D_flash.png'), ('readme.txt', 'not a supported image type')):
        assert f'not paired, skipped: {name} (' in printed and reason in printed
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['B_denoised.png']


def test_a_model_trained_on_unclipped_noise_is_noted(tmp_path):
    from fnf_basicsr.denoise import trained_on_clipped_inputs
    for name, train, expected in (('plain', {'type': 'FlashNoFlashDataset'}, False),
                                  ('clipped', {'clip_input': True}, True),
                                  ('isp', {'isp': {'jpeg_quality': 90}}, True)):
        (tmp_path / f'{name}.yml').write_text(yaml.safe_dump({'network_g': {'type': 'DeepFnF'},
                                                              'datasets': {'train': train}}))
        assert trained_on_clipped_inputs(tmp_path / f'{name}.yml') is expected
    (tmp_path / 'release.yml').write_text(yaml.safe_dump({'network_g': {'type': 'DeepFnF'}}))
    assert trained_on_clipped_inputs(tmp_path / 'release.yml') is False
    assert trained_on_clipped_inputs(tmp_path / 'absent.yml') is False
