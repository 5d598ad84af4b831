"""studio.atomic: the target is replaced whole or not at all, and no temporary file is left behind."""

import json
import stat

import pytest

from studio.atomic import atomic_path, write_json_atomic, write_text_atomic


def test_writes_replace_the_target_and_leave_nothing_else(tmp_path):
    target = tmp_path / "status.json"
    write_json_atomic(target, {"step": 1})
    write_json_atomic(target, {"step": 2, "when": tmp_path})  # a Path is written with str()
    assert json.loads(target.read_text()) == {"step": 2, "when": str(tmp_path)}
    write_text_atomic(tmp_path / "current", "run-1\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "status.json"]


def test_an_error_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "table.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_mode_and_exclusive_keep_a_secret_private_and_unreplaced(tmp_path):
    secret = tmp_path / "credentials.json"
    write_json_atomic(secret, {"token": "a"}, mode=0o600, exclusive=True)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_json_atomic(secret, {"token": "b"}, mode=0o600, exclusive=True)
    assert json.loads(secret.read_text()) == {"token": "a"}
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]
