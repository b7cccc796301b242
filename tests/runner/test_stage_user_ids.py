"""An environment's stage user id is never one this machine uses (an account's, a group's, one inside a
subordinate range of /etc/subuid or /etc/subgid), never above the largest id there is, and never one
handed out before, even after the environments that are gone have left the record, nor after a record
that cannot be read (the stage is refused then) or a power loss (the record is written durably).

No root needed: the id files are temporary ones and the accounts a function of the test's."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.backends.base import StageError
from runner.backends.stage_users import STAGE_UID_BASE, StageUsers
from runner.backends.taken_ids import LAST_ID, has_account, next_free_id, subordinate_ranges

BASE = STAGE_UID_BASE


def _users(
    state: Path, subuid: str = "", subgid: str = "", accounts: Callable[[int], bool] = lambda _: False
) -> StageUsers:
    (state / "subuid").write_text(subuid)
    (state / "subgid").write_text(subgid)
    return StageUsers(state / "stage-users.json", state / "subuid", state / "subgid", accounts)


def _environment(root: Path, name: str) -> str:
    artifacts = root / "environments" / name / "artifacts"
    artifacts.mkdir(parents=True)
    return str(artifacts)


# -- the first free id ---------------------------------------------------------------------------------


def test_the_first_free_id_is_past_every_taken_range_and_account() -> None:
    overlapping = [range(10, 20), range(15, 30), range(40, 50)]
    assert next_free_id(10, overlapping, lambda number: number in {30, 31}) == 32
    assert next_free_id(5, overlapping, lambda _: False) == 5
    assert next_free_id(45, overlapping, lambda _: False) == 50


def test_there_is_no_free_id_past_the_last() -> None:
    assert next_free_id(5, [range(5, 8)], lambda _: False, last=7) is None
    assert next_free_id(LAST_ID, [], lambda _: False) == LAST_ID
    assert next_free_id(LAST_ID + 1, [], lambda _: False) is None
    assert next_free_id(LAST_ID - 1, [range(LAST_ID - 1, LAST_ID + 1)], lambda _: False) is None


def test_subordinate_ranges_are_read_as_shadow_writes_them(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text(
        "# rootless containers\n"
        "\n"
        "alice:100000:65536\n"
        "1001:165536:65536\n"
        "  # an indented comment\n"
        "bob:200000\n"  # not of the form: delegates nothing
        "carol:x:10\n"
        "dave:300000:0\n"
    )
    assert subordinate_ranges(subuid) == [range(100000, 165536), range(165536, 231072)]
    assert subordinate_ranges(tmp_path / "absent") == []


def test_accounts_of_this_machine_are_known() -> None:
    assert has_account(0)  # root, and its group
    assert not has_account(LAST_ID)


# -- allocation ---------------------------------------------------------------------------------------


def test_a_new_environment_skips_ids_of_accounts_groups_and_subordinate_ranges(tmp_path: Path) -> None:
    users = _users(
        tmp_path,
        subuid=f"alice:{BASE}:65536\n",
        subgid=f"1000:{BASE + 65536}:10\n",
        accounts=lambda number: number == BASE + 65546,
    )
    first = users.of(_environment(tmp_path, "production"))
    assert (first.uid, first.gid) == (BASE + 65547, BASE + 65547)
    assert users.of(_environment(tmp_path, "preview")).uid == BASE + 65548


def test_a_recorded_id_that_came_into_use_is_replaced_by_a_new_one(tmp_path: Path) -> None:
    production = _environment(tmp_path, "production")
    (tmp_path / "stage-users.json").write_text(json.dumps({production: BASE}))
    users = _users(tmp_path, accounts=lambda number: number == BASE)  # an account made since
    assert users.of(production).uid == BASE + 1
    assert _users(tmp_path).of(production).uid == BASE + 1  # recorded


def test_no_id_past_the_last_is_handed_out(tmp_path: Path) -> None:
    (tmp_path / "stage-users.json").write_text(json.dumps({"/gone": LAST_ID}))
    with pytest.raises(StageError, match="no user id is left"):
        _users(tmp_path).of(_environment(tmp_path, "preview"))


def test_a_subordinate_range_up_to_the_last_id_is_refused_with_the_fix(tmp_path: Path) -> None:
    users = _users(tmp_path, subgid=f"containers:{BASE}:{LAST_ID - BASE + 1}\n")
    with pytest.raises(StageError) as refused:
        users.of(_environment(tmp_path, "production"))
    message = str(refused.value)
    assert str(tmp_path / "subgid") in message
    assert "Move or shrink the subordinate range" in message and "stage_user" in message


# -- the record ---------------------------------------------------------------------------------------


def test_gone_environments_leave_the_record_but_their_ids_are_never_handed_out_again(tmp_path: Path) -> None:
    users = _users(tmp_path)
    production, preview = _environment(tmp_path, "production"), _environment(tmp_path, "preview")
    assert (users.of(production).uid, users.of(preview).uid) == (BASE, BASE + 1)
    shutil.rmtree(Path(preview).parent)  # the preview environment is torn down

    assert users.of(_environment(tmp_path, "preview-2")).uid == BASE + 2
    record = json.loads((tmp_path / "stage-users.json").read_text())
    assert set(record["environments"]) == {production, str(tmp_path / "environments/preview-2/artifacts")}
    assert record["next"] == BASE + 3

    restarted = _users(tmp_path)
    assert restarted.of(production).uid == BASE
    assert restarted.of(_environment(tmp_path, "preview")).uid == BASE + 3  # not its old BASE + 1


def test_a_record_of_the_first_format_is_read_and_continued(tmp_path: Path) -> None:
    production = _environment(tmp_path, "production")
    first_format = {production: BASE + 1, "/gone/artifacts": BASE + 5}  # {folder: id}, no "next"
    (tmp_path / "stage-users.json").write_text(json.dumps(first_format))
    users = _users(tmp_path)
    assert users.of(production).uid == BASE + 1
    preview = _environment(tmp_path, "preview")
    assert users.of(preview).uid == BASE + 6
    record = json.loads((tmp_path / "stage-users.json").read_text())
    assert record == {"next": BASE + 7, "environments": {production: BASE + 1, preview: BASE + 6}}


# A record that cannot be trusted: each would restart the ids at the base, where another environment's
# id (and its files) may be. The first-format records among them are tables of folder -> id too.
CORRUPT = {
    "empty (a power loss after the rename)": "",
    "partial": f'{{"next": {BASE + 3}, "environments": {{"/srv/a',
    "not valid UTF-8": b'{"next": 2000000001, "environments": {"/\xff": 2000000000}}',
    "not an object": "[2000000000]",
    "next not a number": json.dumps({"next": "2000000003", "environments": {}}),
    "next a float": json.dumps({"next": BASE + 3.0, "environments": {}}),
    "next below the base": json.dumps({"next": 1000, "environments": {}}),
    "next past the last id": json.dumps({"next": LAST_ID + 2, "environments": {}}),
    "next not above every id": json.dumps({"next": BASE + 1, "environments": {"/a": BASE, "/b": BASE + 1}}),
    "next without environments": json.dumps({"next": BASE + 3}),
    "environments not an object": json.dumps({"next": BASE + 3, "environments": [BASE]}),
    "an unknown key": json.dumps({"next": BASE + 3, "environments": {}, "ids": {}}),
    "an id not a number": json.dumps({"next": BASE + 3, "environments": {"/a": str(BASE)}}),
    "an id a boolean": json.dumps({"next": BASE + 3, "environments": {"/a": True}}),
    "an id below the base": json.dumps({"next": BASE + 3, "environments": {"/a": 1000}}),
    "an id past the last": json.dumps({"/a": LAST_ID + 1}),
    "an id null (first format)": json.dumps({"/a": BASE, "/b": None}),
    "an id of two environments": json.dumps({"next": BASE + 1, "environments": {"/a": BASE, "/b": BASE}}),
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_record_refuses_the_stage_with_the_fix_and_is_left_as_it_is(
    tmp_path: Path, content: str | bytes
) -> None:
    record = tmp_path / "stage-users.json"
    if isinstance(content, bytes):
        record.write_bytes(content)
    else:
        record.write_text(content)
    before = record.read_bytes()
    with pytest.raises(StageError) as refused:
        _users(tmp_path).of(_environment(tmp_path, "production"))
    message = str(refused.value)
    assert str(record) in message and "cannot be trusted" in message, message
    assert "Restore it from a backup" in message and "delete it only if" in message, message
    assert str(tmp_path / "environments") in message and str(tmp_path / "runs") in message, message
    assert record.read_bytes() == before  # the evidence, and perhaps the ids, kept for its owner


def test_an_unreadable_record_refuses_the_stage_until_it_is_restored(tmp_path: Path) -> None:
    production = _environment(tmp_path, "production")
    record = tmp_path / "stage-users.json"
    record.mkdir()  # unreadable even to root, as a failing disk's file would be
    users = _users(tmp_path)
    with pytest.raises(StageError, match="cannot be read") as refused:
        users.of(production)
    assert str(record) in str(refused.value)
    record.rmdir()
    record.write_text(json.dumps({"next": BASE + 8, "environments": {production: BASE + 7}}))  # a backup
    assert users.of(production).uid == BASE + 7  # read again at the next stage, no restart needed
    assert users.of(_environment(tmp_path, "preview")).uid == BASE + 8


def test_the_record_is_on_disk_before_the_rename_and_the_rename_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the first fsync a power loss can leave the renamed record empty (delayed allocation);
    without the second, the old record (a lower "next") can come back."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        events.append(("replace", f"{os.path.realpath(source)} -> {os.path.realpath(target)}"))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    folder = tmp_path.resolve()
    users = _users(tmp_path)
    users.of(_environment(tmp_path, "production"))
    assert len(events) == 3, events
    (first, temporary), (second, renamed), (third, synced_folder) = events
    assert (first, second, third) == ("fsync", "replace", "fsync"), events
    assert Path(temporary).parent == folder and temporary != str(folder / "stage-users.json")
    assert renamed == f"{temporary} -> {folder / 'stage-users.json'}"
    assert synced_folder == str(folder)


def test_a_record_that_cannot_be_written_refuses_the_stage_and_hands_out_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = _environment(tmp_path, "production")
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    users = _users(tmp_path)
    with pytest.raises(StageError, match="cannot be written") as refused:
        users.of(production)
    assert str(tmp_path / "stage-users.json") in str(refused.value)
    assert not (tmp_path / "stage-users.json").exists()
    assert [path.name for path in tmp_path.iterdir() if path.suffix == ".tmp"] == []

    monkeypatch.setattr(os, "fsync", real_fsync)
    assert users.of(production).uid == BASE  # no stage ran as it: nothing of BASE's to keep apart
    assert json.loads((tmp_path / "stage-users.json").read_text())["environments"] == {production: BASE}
