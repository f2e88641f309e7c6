"""scripts/ holds shells only: each file imports its command from the package and calls it, and runs from any
folder. The commands themselves are tested through their modules: tests/tools/test_<command>.py."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SCRIPTS_DIR

SCRIPTS = sorted(SCRIPTS_DIR.rglob('*.py'))
# Runs each script given as an argument as ``python SCRIPT --help`` would; prints {script: [exit code, stdout]}.
HELP_RUNNER = """
import contextlib, io, json, runpy, sys
results = {}
for path in sys.argv[1:]:
    sys.argv, out = [path, '--help'], io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(path, run_name='__main__')
            code = None
        except SystemExit as exit:
            code = exit.code
    results[path] = [code, out.getvalue()]
print(json.dumps(results))
"""


def shell_parts(path):
    """(imported module, imported name, name called under ``__main__``) of a shell script, or None."""
    body = ast.parse(path.read_text()).body
    if len(body) != 3 or not isinstance(body[0], ast.Expr) or not isinstance(body[1], ast.ImportFrom):
        return None
    guard = body[2]
    calls = [node for node in ast.walk(guard) if isinstance(node, ast.Call)]
    if not isinstance(guard, ast.If) or len(guard.body) != 1 or len(calls) != 1 or calls[0].args:
        return None
    return body[1].module, body[1].names[0].name, ast.unparse(calls[0].func)


@pytest.mark.parametrize('path', SCRIPTS, ids=lambda path: str(path.relative_to(SCRIPTS_DIR)))
def test_script_only_calls_a_package_command(path):
    parts = shell_parts(path)
    assert parts is not None, f'{path} should be a docstring, one import and `if __name__ == "__main__": main()`'
    module, name, called = parts
    assert module.startswith('fnf_basicsr.') and called == name


def test_every_script_prints_its_help_from_another_folder(tmp_path):
    # one process for all: each start imports torch and basicsr (about 10 s on a busy 2-core machine)
    proc = subprocess.run([sys.executable, '-c', HELP_RUNNER, *map(str, SCRIPTS)], cwd=tmp_path, text=True,
                          capture_output=True, env={**os.environ, 'OMP_NUM_THREADS': '1'}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    failed = {path: (code, text[:200]) for path, (code, text) in results.items()
              if code != 0 or not text.startswith(f'usage: {Path(path).name} ')}
    assert len(results) == 12, 'scripts/ should hold the twelve command shells'
    assert not failed, failed
