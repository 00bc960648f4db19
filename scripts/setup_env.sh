#!/usr/bin/env bash
# Create the project's virtual environment (.venv at the repository root) and install the project
# into it, editable, with its test extra: `pip install -e '.[test]'`. Idempotent: a second run
# finds the stamp of the same pyproject.toml and requirements and returns at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
stamp=".venv/.requirements-$(cat pyproject.toml requirements.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "setting up .venv (first run: a few minutes)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    rm -f .venv/.requirements-*
    touch "$stamp"
fi
