"""Our ref rules agree with ``git check-ref-format`` itself, on generated names."""

from __future__ import annotations

import subprocess

import pytest

from gitops.refs import branch_problem, is_full_sha, ref_problem, sha_problem

from . import hostile

pytestmark = pytest.mark.timeout(60)


def git_accepts(ref: str) -> bool:
    result = subprocess.run(["git", "check-ref-format", ref], capture_output=True, check=False)
    return result.returncode == 0


def test_every_generated_name_is_judged_as_git_judges_it() -> None:
    names = [*hostile.invalid_branch_names(), *hostile.valid_branch_names()]
    checked = 0
    for name in names:
        ref = f"refs/heads/{name}"
        if "\x00" in ref or len(ref) > 4000 or not _encodable(ref):
            continue  # argv cannot carry these; our own limits refuse them (below)
        if len(ref.encode()) > 1024 or any(len(c.encode()) > 255 for c in ref.split("/")):
            continue  # git has no length limit; ours is below
        assert (ref_problem(ref) is None) == git_accepts(ref), ref
        checked += 1
    assert checked > 100


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def test_what_git_cannot_be_asked_is_refused_with_the_reason() -> None:
    assert ref_problem("refs/heads/a\x00b") == (
        "contains the control character '\\x00', which Git does not allow in a ref"
    )
    assert ref_problem("refs/heads/\ud800") == "is not valid Unicode (it holds a lone surrogate)"
    assert ref_problem("refs/heads/" + "x" * 2000) == "is 2011 bytes long; at most 1024 are allowed"
    assert ref_problem("refs/heads/" + "y" * 256) == "has a component longer than 255 bytes"
    assert branch_problem("-x") == "starts with '-', which Git does not allow in a branch name"


def test_commit_ids_must_be_full() -> None:
    assert is_full_sha("c" * 40) and is_full_sha("c" * 64)
    assert sha_problem("c" * 7) == "is an abbreviated commit id ('ccccccc'); give the full 40-character SHA"
    assert sha_problem("not-a-sha") == "must be a full 40-character commit SHA, not 'not-a-sha'"
    for bad in hostile.bad_shas():
        assert sha_problem(bad) is not None, bad
