"""The training benchmark's option overrides and table (no timing here: timings live in reports)."""
from conftest import REPO_DIR
from fnf_basicsr.utils.training_profile import markdown_table, training_options

OPTIONS = REPO_DIR / 'options'


def test_variants_override_precision_layout_and_adam(tmp_path):
    opt = training_options(OPTIONS / 'train_fnf.yml', 'cpu', str(tmp_path), precision='bf16', channels_last=True,
                           crop=256, adam='foreach')
    assert opt['train']['mixed_precision'] == 'bf16' and opt['train']['channels_last'] is True
    assert opt['train']['optim_g']['fused'] is False and opt['train']['optim_g']['lr'] == 1e-4
    assert opt['datasets']['train']['crop_size'] == 256
    as_is = training_options(OPTIONS / 'train_fnf.yml', 'cpu', str(tmp_path))
    assert as_is['train']['optim_g']['fused'] is True  # the file's choice when no variant is asked
    fp32 = training_options(OPTIONS / 'train_fnf.yml', 'cpu', str(tmp_path), precision='fp32', adam='fused')
    assert fp32['train']['mixed_precision'] is None and fp32['train']['optim_g']['fused'] is True


def row(precision, memory_format, adam, seconds):
    return {'option_file': 'f.yml', 'network': 'DeepFnF', 'parameters': 10, 'batch': 1, 'crop': 256,
            'device': 'cpu', 'precision': precision, 'memory_format': memory_format, 'adam': adam, 'runs': 3,
            'seconds_per_iter_compute': seconds, 'seconds_per_iter_with_data': seconds, 'peak_rss_mb': 100.0,
            'peak_cuda_mb': None}


def test_speed_up_is_against_fp32_nchw_with_foreach_adam_when_timed():
    rows = [row('fp32', 'nchw', 'fused', 3.0), row('fp32', 'nchw', 'foreach', 4.0),
            row('bf16', 'channels_last', 'fused', 1.6)]
    lines = markdown_table(rows).splitlines()
    assert lines[0].count('|') == lines[2].count('|') == 16
    speed_ups = [line.split('|')[14].strip() for line in lines[2:]]
    assert speed_ups == ['1.33x', '1.00x', '2.50x']
    only_fused = markdown_table([row('fp32', 'nchw', 'fused', 3.0), row('bf16', 'channels_last', 'fused', 1.5)])
    assert [line.split('|')[14].strip() for line in only_fused.splitlines()[2:]] == ['1.00x', '2.00x']
