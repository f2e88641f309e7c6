"""The noise level a test sample is scored at (fnf_basicsr.data.levels): grouping, labels, tags, table order."""
import numpy as np

from fnf_basicsr.data.levels import level_label, level_of, level_tag, ordered_levels


def test_a_sample_is_grouped_by_its_awgn_sigma_else_by_its_dimming_factor():
    assert level_of(50.0) == 50.0 and level_of(50.0, None) == 50.0 and level_of(50.0, 0.0) == 50.0
    assert level_of(50.0, -1.0) == 50.0  # not a sigma
    assert level_of(1.0, 25.0) == 25.0 and level_of(1.0, np.float32(75)) == 75.0
    assert type(level_of(np.float32(12.5))) is float and type(level_of(1, 25)) is float


def test_labels_and_tags_say_which_protocol_a_level_is_of():
    assert [level_label(v, awgn=False) for v in (100.0, 50.0, 12.5)] == ['100x', '50x', '12.5x']
    assert [level_label(v, awgn=True) for v in (25.0, 50.0)] == ['sigma 25', 'sigma 50']
    assert level_tag(12.5, awgn=False) == '12.5x' and level_tag(75.0, awgn=True) == 'sigma75'
    assert all(' ' not in level_tag(v, awgn) for v in (25.0, 100.0) for awgn in (True, False))


def test_tables_list_dimming_factors_noisiest_first_and_sigmas_ascending_each_once():
    assert ordered_levels([12.5, 100.0, 50.0, 100.0, 25.0], awgn=False) == [100.0, 50.0, 25.0, 12.5]
    assert ordered_levels([75.0, 25.0, 50.0, 25.0], awgn=True) == [25.0, 50.0, 75.0]
    assert ordered_levels(iter([]), awgn=True) == []
