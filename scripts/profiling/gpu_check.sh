#!/usr/bin/env bash
# Command-line shell of fnf_basicsr.tools.gpu_check; --help describes the command, docs/gpu_check.md the run.
# It runs the module as a file, not with -m: its first step installs the project, so the package may not be
# importable yet. PYTHON picks the interpreter (default: python3, the one holding torch on the GPU machine).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "${PYTHON:-python3}" "$repo/fnf_basicsr/tools/gpu_check.py" "$@"
