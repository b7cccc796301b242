"""Mirrors over real transports: smart HTTP with and without a token, SSH with known_hosts checked."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from gitops.mirrors import CommitNotFound, MirrorError, Mirrors
from gitops.secret import Secret
from gitops.settings import RepositorySettings

from .gitserver import GitHttpServer, SshServer
from .helpers import SourceRepo

pytestmark = pytest.mark.timeout(60)


def _settings(url: str, **kw: object) -> RepositorySettings:
    return RepositorySettings(
        url=url, provider="github", name="acme/pipelines", api_base="https://api.github.com",
        webhook_secret=Secret("s"), **kw,  # type: ignore[arg-type]
    )


def test_fetch_is_incremental_and_checkout_writes_exactly_the_commit(
    tmp_path: Path, git_http: GitHttpServer, github_repo: SourceRepo
) -> None:
    first = github_repo.commit({"a.txt": "one\n", "dir/b.py": "print(1)\n", "run.sh": "echo hi\n"})
    os.chmod(github_repo.work / "run.sh", 0o755)
    (github_repo.work / "link").symlink_to("a.txt")
    first = github_repo.commit({}, message="exec and link")
    github_repo.push()
    mirrors = Mirrors(tmp_path / "mirrors")
    repository = _settings(git_http.url("pipelines"))

    initial = mirrors.fetch_sync(repository)
    second = github_repo.commit({"a.txt": "two\n"})
    github_repo.push()
    incremental = mirrors.fetch_sync(repository)

    assert initial.received_objects >= 6
    assert 1 <= incremental.received_objects <= 3
    assert mirrors.has_commit(repository, second)
    assert mirrors.resolve_sync(repository, "main") == second
    checkout = tmp_path / "checkout"
    mirrors.checkout_sync(repository, first, checkout)
    assert (checkout / "a.txt").read_text() == "one\n"
    assert (checkout / "dir" / "b.py").read_text() == "print(1)\n"
    assert os.access(checkout / "run.sh", os.X_OK)
    assert os.readlink(checkout / "link") == "a.txt"
    assert not (checkout / ".git").exists()
    mirrors.checkout_sync(repository, second, checkout)
    assert (checkout / "a.txt").read_text() == "two\n"
    with pytest.raises(CommitNotFound):
        mirrors.checkout_sync(repository, "f" * 40, checkout)


def test_https_token_authentication_and_its_errors_never_show_the_token(
    tmp_path: Path, git_root: Path, github_repo: SourceRepo
) -> None:
    sha = github_repo.commit({"a.txt": "x"})
    github_repo.push()
    with GitHttpServer(git_root, token="ghs_the_right_token") as server:
        url = server.url("pipelines")
        good = Mirrors(tmp_path / "good")
        good.fetch_sync(_settings(url, api_token=Secret("ghs_the_right_token")))
        assert good.has_commit(_settings(url), sha)
        with pytest.raises(MirrorError, match="rejected the credentials") as wrong:
            wrong_token = _settings(url, api_token=Secret("ghs_wrong_token_x"))
            Mirrors(tmp_path / "wrong").fetch_sync(wrong_token)
        assert "ghs_wrong_token_x" not in str(wrong.value)
        with pytest.raises(MirrorError, match="set api_token_env"):
            Mirrors(tmp_path / "none").fetch_sync(_settings(url))


def test_ensure_commit_gives_up_after_the_configured_attempts(
    tmp_path: Path, git_http: GitHttpServer, github_repo: SourceRepo
) -> None:
    github_repo.commit({"a.txt": "x"})
    github_repo.push()
    mirrors = Mirrors(tmp_path / "mirrors")

    async def attempt() -> None:
        await mirrors.ensure_commit(_settings(git_http.url("pipelines")), "e" * 40, 3, 0.01)

    with pytest.raises(CommitNotFound, match="not fetchable after 3 attempts"):
        asyncio.run(attempt())
    assert sum(r.startswith("GET /pipelines.git/info/refs") for r in git_http.requests) == 3


@pytest.mark.skipif(not SshServer.available(), reason="needs Debian's openssh-server (sshd)")
def test_ssh_key_authentication_with_known_hosts_verification(
    tmp_path: Path, github_repo: SourceRepo
) -> None:
    sha = github_repo.commit({"a.txt": "over ssh"})
    github_repo.push()
    with SshServer(tmp_path / "ssh") as ssh:
        url = ssh.url(github_repo.bare)
        key = ssh.folder / "client_key"
        trusted = _settings(url, ssh_key_file=key, known_hosts_file=ssh.folder / "known_hosts")
        mirrors = Mirrors(tmp_path / "mirrors", [trusted])
        mirrors.fetch_sync(trusted)
        assert mirrors.has_commit(trusted, sha)

        other = tmp_path / "other_known_hosts"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True
        )
        stranger = (tmp_path / "stranger.pub").read_text().split()
        other.write_text(f"[127.0.0.1]:{ssh.port} {stranger[0]} {stranger[1]}\n")
        untrusted = _settings(url, ssh_key_file=key, known_hosts_file=other)
        with pytest.raises(MirrorError, match="could not be verified"):
            Mirrors(tmp_path / "untrusted", [untrusted]).fetch_sync(untrusted)
