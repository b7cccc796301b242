"""An environment's stage user id is never one this machine uses (an account's, a group's, one inside a
subordinate range of /etc/subuid or /etc/subgid), never above the largest id there is, and never one
handed out before, even after the environments that are gone have left the record.

No root needed: the id files are temporary ones and the accounts a function of the test's."""

from __future__ import annotations

import json
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
