"""Which scenes a dataset uses (fnf_basicsr.data.scene_selection): the test split kept apart, a fixed validation
selection, explicit validation names checked against the scenes."""
import pytest

from fnf_basicsr.data import faid
from fnf_basicsr.data.scene_selection import read_val_names, select_names
from fnf_basicsr.errors import ConfigError

NAMES = [f'S{i:03d}' for i in range(300)]


def test_the_test_split_is_kept_apart_unless_asked():
    test_name = faid.load_test_split()[0]
    names = ['Other_2', test_name, 'Other_1']
    assert select_names(names, 'test') == [test_name]
    assert select_names(names, 'all') == ['Other_1', 'Other_2']
    assert select_names(names, 'all', exclude_test_split=False) == sorted(names)
    assert test_name not in select_names(names, 'train') + select_names(names, 'val')
    with pytest.raises(ConfigError, match=r"subset must be one of \['all', 'train', 'val', 'test'\], got 'holdout'"):
        select_names(names, 'holdout')


def test_validation_is_a_fixed_selection_of_num_val_names_and_train_the_rest():
    train, val = select_names(NAMES, 'train'), select_names(NAMES, 'val')
    assert len(val) == 128 and sorted(train + val) == NAMES and select_names(NAMES, 'val') == val
    assert select_names(NAMES, 'val', val_names=['S001', 'S002']) == ['S001', 'S002']
    assert select_names(list(reversed(NAMES)), 'val') == val  # the order names are listed in does not matter
    assert set(select_names(NAMES, 'val', num_val=10)) < set(val)  # a prefix of the same permutation
    assert select_names(NAMES[:5], 'val') == NAMES[:5]  # fewer scenes than num_val: all of them


def test_val_names_are_read_and_checked_against_the_scenes(tmp_path, basicsr_log):
    listed = tmp_path / 'val.txt'
    listed.write_text('Scene_b\nScene_x\n  Scene_a \n')
    assert read_val_names(listed, {'Scene_a', 'Scene_b'}) == ['Scene_b', 'Scene_a']
    assert "1 of 3 names are not in this dataset and are ignored, e.g. ['Scene_x']" in basicsr_log.text
    listed.write_text('elsewhere/Scene_a\n')
    with pytest.raises(ConfigError, match=r'none of its 1 names is a scene of this dataset \(e\.g\. Scene_a\)'):
        read_val_names(listed, {'Scene_a'})
    with pytest.raises(ConfigError, match=r'absent\.txt: cannot read it'):
        read_val_names(tmp_path / 'absent.txt', {'Scene_a'})
