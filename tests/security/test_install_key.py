"""The install key (lib.crypto.install_key): the SECRET_KEY of the embedded default, made at
random on the first run, kept in VAR_DIR/secret_key; and the old built-in key, which is public
and may only ever decrypt."""

from __future__ import annotations

import ast
import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from lib import crypto

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_run_makes_a_random_key_in_a_file_of_mode_600(tmp_path):
    path = tmp_path / "secret_key"
    old_umask = os.umask(0)  # the mode does not depend on the umask
    try:
        key = crypto.install_key(path)
    finally:
        os.umask(old_umask)

    assert mode(path) == 0o600
    assert path.read_text() == key + "\n"
    assert len(key) >= 50 and key.isascii() and key.isprintable()
    assert key != crypto.LEGACY_DEFAULT_KEY
    assert os.listdir(tmp_path) == ["secret_key"]  # no temporary file left behind


def test_later_loads_read_the_same_key_and_each_install_has_its_own(tmp_path):
    first = crypto.install_key(tmp_path / "secret_key")

    assert crypto.install_key(tmp_path / "secret_key") == first
    assert crypto.install_key(tmp_path / "secret_key") == first
    assert crypto.install_key(tmp_path / "other") != first


def test_a_process_that_loses_the_race_uses_the_winners_key(tmp_path, monkeypatch):
    """Another process creates the file between this one's read (none yet) and its link."""
    path = tmp_path / "secret_key"
    winner = "w" * 64
    real_link = os.link

    def link_after_the_winner(source, target):
        Path(target).write_text(winner + "\n")
        return real_link(source, target)

    monkeypatch.setattr(crypto.os, "link", link_after_the_winner)

    assert crypto.install_key(path) == winner
    assert path.read_text() == winner + "\n"
    assert os.listdir(tmp_path) == ["secret_key"]


READY = "ready"
LOADER = f"""
import sys
from lib.crypto import install_key
print({READY!r}, flush=True)
sys.stdin.readline()
print(install_key(sys.argv[1]), flush=True)
"""


def test_processes_starting_together_agree_on_one_key(tmp_path):
    path = tmp_path / "secret_key"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    loaders = [
        subprocess.Popen(
            [sys.executable, "-c", LOADER, str(path)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        # Every process is ready to load before any of them starts.
        for loader in loaders:
            assert loader.stdout.readline().strip() == READY, loader.stderr.read()
        for loader in loaders:
            loader.stdin.write("go\n")
            loader.stdin.flush()
        results = [loader.communicate(timeout=60) for loader in loaders]
    finally:
        for loader in loaders:
            if loader.poll() is None:
                loader.kill()
    assert all(loader.returncode == 0 for loader in loaders), [err for _, err in results]
    keys = {out.strip() for out, _ in results}
    assert keys == {path.read_text().strip()}
    assert mode(path) == 0o600
    assert os.listdir(tmp_path) == ["secret_key"]


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda path: path.mkdir(), "cannot be read"),
        (lambda path: path.write_text(""), "holds no valid key"),
        (lambda path: path.write_text("short\n"), "holds no valid key"),
        (lambda path: path.write_text("a key with spaces " * 4), "holds no valid key"),
        (lambda path: path.write_bytes(b"\xff" * 64), "cannot be read"),
        (lambda path: path.parent.rmdir() or path.parent.write_text("a file"), "cannot be"),
    ],
    ids=["a-directory", "empty", "too-short", "spaces", "not-ascii", "parent-is-a-file"],
)
def test_a_key_file_that_cannot_be_used_stops_the_process_with_a_clear_error(
    tmp_path, setup, problem
):
    path = tmp_path / "var" / "secret_key"
    path.parent.mkdir()
    setup(path)
    before = path.read_bytes() if path.is_file() else None

    with pytest.raises(ImproperlyConfigured) as raised:
        crypto.install_key(path)

    message = str(raised.value)
    assert str(path) in message and problem in message and "SECRET_KEY" in message
    # A damaged key is never replaced: the secrets encrypted with it would be lost for good.
    if before is not None:
        assert path.read_bytes() == before


def test_a_file_system_without_hard_links_stops_the_process_with_a_clear_error(
    tmp_path, monkeypatch
):
    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(crypto.os, "link", no_links)

    with pytest.raises(ImproperlyConfigured, match="hard links"):
        crypto.install_key(tmp_path / "secret_key")
    assert os.listdir(tmp_path) == []


def test_the_old_built_in_key_appears_nowhere_but_its_decrypt_only_constant():
    """No settings module, command or library can pick the public key up to encrypt with."""
    needle = crypto.LEGACY_DEFAULT_KEY
    sources = list(ROOT.glob("*.py"))
    for top in ROOT.iterdir():
        if top.is_dir() and not top.name.startswith(".") and top.name not in {"var", "tests"}:
            sources.extend(top.rglob("*.py"))
    texts = {str(path.relative_to(ROOT)): path.read_text(errors="replace") for path in sources}
    assert [name for name, text in texts.items() if needle in text] == ["lib/crypto.py"]
    assert [name for name, text in texts.items() if "LEGACY_DEFAULT_KEY" in text] == [
        "lib/crypto.py"
    ]
    # In lib/crypto.py the code reads it in one place: the decrypt-only Fernet.
    tree = ast.parse((ROOT / "lib" / "crypto.py").read_text())
    readers = [
        function.name
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Name) and node.id == "LEGACY_DEFAULT_KEY"
    ]
    assert readers == ["_legacy_fernet"]
