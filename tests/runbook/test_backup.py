"""Step 5's backup: animl-api's export script run in its checkout, counted only when a new folder
with `.json` files appeared. The checkout is a fake one whose script writes what the real one does."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from animl_ingest_cli.errors import InputError, StoreError
from animl_ingest_cli.runbook import backup
from tests.runbook.helpers import backups, fake_api_checkout, needs_npm

pytestmark = needs_npm


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fake_api_checkout(tmp_path, monkeypatch)


def test_runs_the_export_with_the_animl_profile_and_finds_its_folder(api: Path) -> None:
    lines: list[str] = []
    made = backup.export_db(api, "prod", on_line=lines.append)
    [folder] = backups(api, "prod")
    assert made.folder == folder and made.files == 2 and made.bytes > 0
    assert sorted(p.name for p in folder.glob("*.json")) == ["animl-prod--cameras.json",
                                                            "animl-prod--images.json"]
    assert (folder / "profile.txt").read_text() == "animl"
    assert lines[0].startswith(f"$ cd {api} && AWS_PROFILE=animl npm run export-db-prod")
    assert any("backed up animl-prod" in line for line in lines)


def test_a_profile_already_set_is_kept_and_a_rerun_in_the_same_minute_counts(
        api: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "animl-admin")
    first = backup.export_db(api, "dev")
    again = backup.export_db(api, "dev")  # the folder is named to the minute: the same one, rewritten
    assert (again.folder / "profile.txt").read_text() == "animl-admin"
    assert again.folder.parent == first.folder.parent and again.files == 2


def test_a_failing_script_fails_the_backup(api: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EXPORT_FAIL", "1")
    lines: list[str] = []
    with pytest.raises(StoreError, match="npm run export-db-prod failed"):
        backup.export_db(api, "prod", on_line=lines.append)
    assert any("cannot reach the database" in line for line in lines)


def test_a_folder_without_json_is_no_backup(api: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EXPORT_EMPTY", "1")
    with pytest.raises(StoreError, match="holds no .json file"):
        backup.export_db(api, "prod")


def test_an_old_backup_does_not_count_as_a_new_one(api: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = api / "backups" / "animl-prod" / "2024-01-01T0000Z"
    old.mkdir(parents=True)
    (old / "animl-prod--images.json").write_text("{}")
    os.utime(old / "animl-prod--images.json", (1704067200, 1704067200))  # written back then
    monkeypatch.setenv("FAKE_EXPORT_FAIL", "")
    (api / "export.js").write_text("console.log('did nothing')")  # exits 0, writes nothing
    with pytest.raises(StoreError, match="no new backup folder appeared"):
        backup.export_db(api, "prod")


def test_the_checkout_and_tools_are_checked_before_anything_runs(
        api: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="not an animl-api checkout"):
        backup.check_checkout(tmp_path / "nowhere", "prod")
    with pytest.raises(InputError, match="no script 'export-db-local'"):
        backup.check_checkout(api, "local")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "package.json").write_text("{oops")
    with pytest.raises(InputError, match="cannot read"):
        backup.check_checkout(tmp_path / "broken", "prod")
    monkeypatch.setenv("PATH", str(Path(shutil.which("npm") or "").parent))  # no mongoexport
    with pytest.raises(InputError, match="needs 'mongoexport'"):
        backup.check_checkout(api, "prod")
