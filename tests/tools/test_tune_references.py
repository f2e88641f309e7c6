"""tune_references: the grid search picks the best validation point per level, the files round-trip."""
import json

import pytest

from fnf_basicsr.benchmark import open_test_set
from fnf_basicsr.data.frozen_writer import freeze, freeze_request
from fnf_basicsr.data.synthetic import generate_split
from fnf_basicsr.tools import tune_references as tune

# Fast settings: 3x3 patches, radius 2, on 48 px crops.
TINY_NLM = ['NLMeansNoFlash.patch_size=3', 'NLMeansNoFlash.patch_distance=2', 'NLMeansNoFlash.h=0.3,0.6,1.2']
TINY_JBF = ['JointBilateralFnF.sigma_space=2,4', 'JointBilateralFnF.flat_noise_target=0.03',
            'JointBilateralFnF.sigma_range=6', 'JointBilateralFnF.detail_transfer=false',
            'JointBilateralFnF.detail_eps=0.05']


@pytest.fixture(scope='module')
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp('tune')
    for split, count in (('val', 2), ('test', 2)):
        generate_split(root / split, split, num_scenes=count, size=80, workers=1, progress=False)
        freeze(*freeze_request(output=str(root / f'frozen_{split}'), dataroot=str(root / split), crop_size=48,
                               subset='all', dimming_factors=[50, 12.5], input_modes=['flash_noflash']),
               progress=False)
    return root


def grid_args(*items):
    return [argument for item in items for argument in ('--grid', item)]


def run(sets, out, *extra):
    return tune.main(['--val-set', str(sets / 'frozen_val'), '--test-set', str(sets / 'frozen_test'),
                      '--out', str(out), '--quiet', *grid_args(*TINY_NLM, *TINY_JBF), *extra])


def test_the_chosen_point_has_the_best_validation_psnr_and_never_loses_to_the_defaults(sets):
    val_set = open_test_set(sets / 'frozen_val')
    samples = tune.samples_by_level(val_set)[50.0]
    grid = {'h': [0.3, 0.6, 1.2], 'patch_size': [3], 'patch_distance': [2]}
    defaults = tune.default_params('NLMeansNoFlash', list(grid))
    result = tune.tune_level('NLMeansNoFlash', tune.grid_points('NLMeansNoFlash', grid), defaults, samples, val_set)
    best = max(result['grid_scores'], key=lambda row: row['val_psnr'])
    assert result['val_psnr'] == max(best['val_psnr'], result['default']['val_psnr'])
    assert result['val_psnr'] >= result['default']['val_psnr']
    assert len({row['val_psnr'] for row in result['grid_scores']}) == 3  # h changes the result
    # a grid of poor points only: the defaults (scored apart, as they are not in the grid) are kept
    poor = tune.tune_level('NLMeansNoFlash', [{'h': 0.05, 'patch_size': 3, 'patch_distance': 2}], defaults,
                           samples, val_set)
    assert poor['params'] == defaults and poor['val_psnr'] == poor['default']['val_psnr']
    assert poor['grid_scores'][0]['val_psnr'] < poor['val_psnr']


def test_the_scores_are_fnf_benchmarks(sets):
    from fnf_basicsr import metrics
    val_set = open_test_set(sets / 'frozen_val')
    sample = tune.samples_by_level(val_set, 1)[12.5][0]
    net = tune.build_reference('JointBilateralFnF', {'sigma_space': 2.0})
    result, target = val_set.render_pair(net(sample['lq'][None]), sample)
    assert tune.score_samples(net, [sample], val_set, tune.METRICS)[0] == metrics.score(result, target)


def test_report_and_parameter_file_round_trip(sets, tmp_path, capsys):
    content = run(sets, tmp_path / 'report')
    loaded = tune.load_tuned_references(tmp_path / 'report' / tune.PARAMS_FILE)
    assert set(loaded) == {'JointBilateralFnF', 'NLMeansNoFlash'}
    for method, record in content['methods'].items():
        assert loaded[method] == {float(level): entry['params'] for level, entry in record['levels'].items()}
        assert set(loaded[method]) == {50.0, 12.5}
        for level, entry in record['levels'].items():
            scores = [row['val_psnr'] for row in entry['grid_scores']]
            assert entry['val_psnr'] >= max(max(scores), entry['default']['val_psnr']) - 1e-12
            assert set(record['test'][level]) == set(record['val'][level]) == {'default', 'tuned'}
            assert record['test'][level]['tuned']['count'] == 2
            # the validation scores of the chosen parameters are those the search saw
            assert record['val'][level]['tuned']['psnr'] == pytest.approx(entry['val_psnr'], abs=1e-9)
            assert set(record['val'][level]['tuned']) == {*tune.METRICS, 'count'}
    stored = json.loads((tmp_path / 'report' / tune.PARAMS_FILE).read_text())
    assert stored['methods']['NLMeansNoFlash']['grid']['h'] == [0.3, 0.6, 1.2]
    report = (tmp_path / 'report' / tune.REPORT_FILE).read_text()
    assert '| non-local means (no-flash) | 50x |' in report and '| joint bilateral (flash-guided) | 12.5x |' in report
    assert report.count('**') == 2 * 2 * 2  # the chosen point of each level in bold, per method
    net = tune.build_reference('NLMeansNoFlash', tune.params_for_dimming(loaded['NLMeansNoFlash'], 12.5))
    assert net.h == loaded['NLMeansNoFlash'][12.5].get('h', 0.6)
    # an existing report is kept unless --overwrite
    with pytest.raises(SystemExit) as exit_info:
        run(sets, tmp_path / 'report')
    assert exit_info.value.code == 2 and '--overwrite' in capsys.readouterr().err
    run(sets, tmp_path / 'report', '--overwrite', '--methods', 'NLMeansNoFlash')


def test_each_level_gets_its_own_optimum(sets, tmp_path, monkeypatch):
    """A scorer whose best h is dimming / 100: the file must hold a different h per level."""
    def fake_scores(net, samples, test_set, metrics=('psnr',)):
        return [{name: -(net.h - float(sample['dimming']) / 100) ** 2 for name in metrics} for sample in samples]

    monkeypatch.setattr(tune, 'score_samples', fake_scores)
    run(sets, tmp_path / 'report', '--methods', 'NLMeansNoFlash', '--grid', 'NLMeansNoFlash.h=0.125,0.3,0.5,0.6')
    loaded = tune.load_tuned_references(tmp_path / 'report' / tune.PARAMS_FILE)['NLMeansNoFlash']
    assert loaded[50.0]['h'] == 0.5 and loaded[12.5]['h'] == 0.125


def test_grid_holds_each_filter_once_and_rejects_unknown_parameters():
    points = tune.grid_points('JointBilateralFnF', {'detail_transfer': [False, True], 'detail_eps': [0.02, 0.05]})
    assert points == [{'detail_transfer': False, 'detail_eps': 0.05}, {'detail_transfer': True, 'detail_eps': 0.02},
                      {'detail_transfer': True, 'detail_eps': 0.05}]
    assert len(tune.grid_points('JointBilateralFnF', tune.DEFAULT_GRIDS['JointBilateralFnF'])) == 36
    with pytest.raises(ValueError, match='no parameter'):
        tune.grid_points('NLMeansNoFlash', {'radius': [1]})
    with pytest.raises(ValueError, match='METHOD.PARAM'):
        tune.parse_grid_overrides(['h=0.5'])
    assert tune.parse_grid_overrides(['NLMeansNoFlash.h=0.5,1']) == {'NLMeansNoFlash': {'h': [0.5, 1]}}


def test_validation_set_must_differ_from_the_test_set(sets, tmp_path, capsys):
    with pytest.raises(SystemExit):
        tune.main(['--val-set', str(sets / 'frozen_val'), '--test-set', str(sets / 'frozen_val'),
                   '--out', str(tmp_path / 'r'), '--quiet'])
    assert 'same set' in capsys.readouterr().err


def test_nearest_level_and_bad_files(tmp_path):
    levels = {100.0: {'h': 1}, 25.0: {'h': 2}, 12.5: {'h': 3}}
    assert tune.params_for_dimming(levels, 70) == {'h': 1} and tune.params_for_dimming(levels, 40) == {'h': 2}
    assert tune.params_for_dimming(levels, 12.5) == {'h': 3}
    (tmp_path / 'x.json').write_text('{"format": "other"}')
    with pytest.raises(ValueError, match='tuned-reference file'):
        tune.load_tuned_references(tmp_path / 'x.json')
