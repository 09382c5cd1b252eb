"""A state file is replaced whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlay.net.atomic_file import write_atomically


def test_writes_creates_directories_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.json"
    write_atomically(path, b"first")
    write_atomically(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    write_atomically(path, b"old")

    def fail(_source: str, _target: Path) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr("overlay.net.atomic_file.os.replace", fail)
    with pytest.raises(OSError, match="disk gone"):
        write_atomically(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
