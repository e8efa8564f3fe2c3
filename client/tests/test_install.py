"""The client stands alone: it imports and answers without any of the server's packages."""

from __future__ import annotations

import subprocess
import sys

import jobyard


def test_the_package_imports_without_django_or_the_server_apps():
    code = (
        "import sys, jobyard, jobyard.worker, jobyard.push, jobyard.__main__\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'rest_framework', 'celery', 'channels', 'config', 'jobs', 'spaces'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_version_is_the_distributions():
    from importlib.metadata import version

    assert jobyard.__version__ == version("jobyard-client")
