"""The one deletion guard (fnf_basicsr.utils.files.remove_owned) and the stale-temporary cleanup built on it."""
import os

import pytest

from fnf_basicsr.errors import ConfigError, DataError
from fnf_basicsr.utils.files import check_separate, remove_owned, remove_stale_temporaries, temporary_path

DEAD_PID = 999999999  # no process has that id


def dead_temporary(folder, target):
    """A temporary of ``target`` as :func:`temporary_path` names it, of a process that is gone."""
    return folder / temporary_path(folder / target).name.replace(f'-{os.getpid()}-', f'-{DEAD_PID}-')


@pytest.fixture
def owned(tmp_path):
    folder = tmp_path / 'owned'
    folder.mkdir()
    (folder / 'mine.npz').write_text('ours')
    (tmp_path / 'victim.txt').write_text('not ours')
    return folder


@pytest.mark.parametrize('name', ['../victim.txt', 'ABSOLUTE', '..', '.', '', 'sub/../../victim.txt'])
def test_names_outside_the_owned_folder_are_refused_and_nothing_is_deleted(owned, name):
    name = str(owned.parent / 'victim.txt') if name == 'ABSOLUTE' else name
    with pytest.raises(DataError, match='refusing to delete'):
        remove_owned(owned, ['mine.npz', name])
    assert (owned / 'mine.npz').exists() and (owned.parent / 'victim.txt').read_text() == 'not ours'


def test_links_and_folders_of_unknown_content_are_refused(owned):
    (owned / 'link.npz').symlink_to(owned.parent / 'victim.txt')
    (owned / 'folder').mkdir()
    (owned / 'folder' / 'thesis.tex').write_text('years of work')
    for name in ('link.npz', 'folder'):
        with pytest.raises(DataError, match='refusing to delete'):
            remove_owned(owned, ['mine.npz', name], contents=('data.mdb',))
    assert (owned / 'mine.npz').exists() and (owned / 'folder' / 'thesis.tex').exists()
    assert (owned.parent / 'victim.txt').exists()


def test_a_folder_outside_the_command_output_is_refused(owned, tmp_path):
    with pytest.raises(DataError, match='outside'):
        remove_owned(owned, ['mine.npz'], within=tmp_path / 'report')
    assert remove_owned(owned, ['mine.npz', 'missing.npz'], within=tmp_path) == [owned / 'mine.npz']


def test_a_folder_of_known_files_is_removed(owned):
    (owned / 'x.lmdb').mkdir()
    for name in ('data.mdb', 'lock.mdb'):
        (owned / 'x.lmdb' / name).write_bytes(b'')
    remove_owned(owned, ['x.lmdb'], contents=('data.mdb', 'lock.mdb', 'meta_info.txt'))
    assert not (owned / 'x.lmdb').exists()


def test_only_our_temporaries_of_dead_processes_are_removed(tmp_path):
    ours = dead_temporary(tmp_path, 'out.png')
    ours.write_bytes(b'half')
    live = temporary_path(tmp_path / 'out.png')  # this process: still writing
    live.write_bytes(b'half')
    users = ['.bashrc.old.tmp', '.notes.1.tmp', '.my.data.12345.tmp', '.x.y.999999999.abc.tmp']
    for name in users:
        (tmp_path / name).write_text('a user file')
    user_folder = tmp_path / '.cache.999999999.0123.tmp'
    user_folder.mkdir()
    (user_folder / 'keep.txt').write_text('a user file')
    foreign = dead_temporary(tmp_path, 'x.lmdb')  # our name, but holding what we never write
    foreign.mkdir()
    (foreign / 'thesis.tex').write_text('years of work')
    assert remove_stale_temporaries(tmp_path, any_name=True, contents=('data.mdb',)) == [ours]
    assert live.exists() and all((tmp_path / name).exists() for name in users)
    assert (user_folder / 'keep.txt').exists() and (foreign / 'thesis.tex').exists()


@pytest.mark.parametrize('output, relation', [('in', 'is'), ('in/sub', 'lies inside'), ('.', 'contains'),
                                              ('in/../in', 'is'), ('link', 'is')])
def test_outputs_separate_from_inputs_checked_on_resolved_paths(tmp_path, output, relation):
    (tmp_path / 'in').mkdir()
    (tmp_path / 'link').symlink_to(tmp_path / 'in')
    with pytest.raises(ConfigError, match=f'--out {tmp_path / output} {relation} the input'):
        check_separate(tmp_path / output, [tmp_path / 'in'], '--out')
    check_separate(tmp_path / 'elsewhere', [tmp_path / 'in'], '--out')
