"""The ``lightmail`` command as an operator uses it, on the embedded default."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lightmail.cli import EXIT_REFUSED, EXIT_USAGE, main
from lightmail.config import load_settings
from lightmail.mailstore.store import Recipient
from lightmail.runtime import open_node


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIGHTMAIL_CONFIG", raising=False)
    monkeypatch.setenv("LIGHTMAIL_SERVER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_domain_user_alias_round_trip(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    assert run(capsys, "domain", "add", "Example.ORG")[:2] == (0, "added domain example.org\n")
    code, out, _ = run(
        capsys, "user", "add", "alice@example.org", "--password", "pw", "--quota", "2G"
    )
    assert (code, out) == (0, "added user alice@example.org (quota 2G)\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\n"))
    assert run(capsys, "user", "add", "bob@example.org", "--password-stdin")[0] == 0
    assert (data_dir / "lightmail.db").exists()

    code, out, _ = run(capsys, "user", "list")
    assert code == 0
    assert out.splitlines() == [
        "alice@example.org\tenabled\tquota 2G\tused 0 in 0 message(s)",
        "bob@example.org\tenabled\tquota unlimited\tused 0 in 0 message(s)",
    ]
    assert run(capsys, "user", "set-quota", "bob@example.org", "512M")[0] == 0
    assert run(capsys, "user", "disable", "bob@example.org")[0] == 0
    assert "bob@example.org\tdisabled\tquota 512M" in run(capsys, "user", "list")[1]

    code, out, _ = run(
        capsys, "alias", "add", "team@example.org", "alice@example.org", "bob@example.org"
    )
    assert (code, out) == (0, "team@example.org -> alice@example.org, bob@example.org\n")
    assert (
        run(capsys, "alias", "list")[1] == "team@example.org\talice@example.org, bob@example.org\n"
    )
    assert run(capsys, "alias", "delete", "team@example.org")[0] == 0
    assert run(capsys, "domain", "list")[1] == "example.org\t2 user(s)\n"


def test_clear_errors_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "user", "add", "carol@nowhere.example", "--password", "pw")
    assert code == EXIT_REFUSED
    assert err == (
        "lightmail: domain nowhere.example does not exist; add it with `lightmail domain add`\n"
    )
    run(capsys, "domain", "add", "example.org")
    code, _, err = run(capsys, "user", "add", "not an address", "--password", "pw")
    assert code == EXIT_REFUSED
    assert "is not a valid address" in err
    run(capsys, "user", "add", "dave@example.org", "--password", "pw")
    code, _, err = run(capsys, "user", "add", "DAVE@example.org", "--password", "pw")
    assert (code, err) == (EXIT_REFUSED, "lightmail: user dave@example.org already exists\n")
    with pytest.raises(SystemExit) as caught:
        main(["user", "add", "eve@example.org", "--quota", "lots"])
    assert caught.value.code == EXIT_USAGE
    assert "'lots' is not a size" in capsys.readouterr().err


def test_user_delete_needs_yes(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "domain", "add", "example.org")
    run(capsys, "user", "add", "frank@example.org", "--password", "pw")
    code, _, err = run(capsys, "user", "delete", "frank@example.org")
    assert code == EXIT_REFUSED
    assert "add --yes to confirm" in err
    assert "frank@example.org" in run(capsys, "user", "list")[1]
    assert run(capsys, "user", "delete", "frank@example.org", "--yes")[0] == 0
    assert run(capsys, "user", "list")[1] == ""


def test_check_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = tmp_path / "good.ini"
    good.write_text("[lmtp]\nmax_message_size = 32M\n")
    code, out, _ = run(capsys, "check-config", "--config", str(good))
    assert code == 0
    assert out.startswith(f"configuration OK ({good})")
    bad = tmp_path / "bad.ini"
    bad.write_text("[gc]\nretention = forever\n")
    code, _, err = run(capsys, "check-config", "--config", str(bad))
    assert code == EXIT_USAGE
    assert err.startswith("lightmail: config [gc] retention = 'forever' is invalid: expected")
    assert err.count("\n") == 1


def test_db_upgrade_is_idempotent(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "db", "upgrade")
    assert code == 0
    assert out.startswith("database schema upgraded from empty to revision ")
    assert run(capsys, "db", "upgrade")[1].startswith("database schema already at revision ")


def test_quarantine_list_release_delete(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "domain", "add", "example.org")
    run(capsys, "user", "add", "gina@example.org", "--password", "pw")

    async def quarantine_two() -> list[int]:
        settings = load_settings(None, os.environ)
        async with open_node(settings) as node:
            user = await node.accounts.get_user("gina@example.org")
            ids = []
            for _ in range(2):

                async def message() -> AsyncIterator[bytes]:
                    yield b"Subject: bad\r\n\r\nvirus inside\r\n"

                stored = await node.store.store_message(message())
                recipient = Recipient(user.id, user.address)
                ids.append(
                    await node.store.quarantine(
                        stored, "evil@example.net", [recipient], "Test.Virus"
                    )
                )
            return ids

    first, second = asyncio.run(quarantine_two())
    code, out, _ = run(capsys, "quarantine", "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{first}\t")
    assert "\tTest.Virus\tfrom <evil@example.net>\tto gina@example.org\t" in lines[0]
    assert run(capsys, "quarantine", "release", str(first))[1] == (
        f"released {first} to gina@example.org\n"
    )
    assert run(capsys, "quarantine", "delete", str(second))[0] == 0
    assert run(capsys, "quarantine", "list")[1] == ""
    assert "used 30 in 1 message(s)" in run(capsys, "user", "list")[1]
    code, _, err = run(capsys, "quarantine", "delete", str(second))
    assert (code, err) == (EXIT_REFUSED, f"lightmail: no quarantined message {second}\n")


def test_gc_run_dry_run_then_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "domain", "add", "example.org")
    run(capsys, "user", "add", "hal@example.org", "--password", "pw")
    body = b"Subject: old\r\n\r\nto be purged\r\n"

    async def deliver_and_delete() -> None:
        settings = load_settings(None, os.environ)
        async with open_node(settings) as node:
            user = await node.accounts.get_user("hal@example.org")

            async def message() -> AsyncIterator[bytes]:
                yield body

            await node.store.deliver([Recipient(user.id, user.address)], message())
            inbox = await node.store.get_mailbox(user.id, "INBOX")
            await node.store.delete_messages(user.id, inbox, [1])

    asyncio.run(deliver_and_delete())
    assert run(capsys, "gc", "run", "--once")[1] == (
        "purged 0 message(s): 0 blob(s) and 0 orphan blob(s), 0 freed\n"
    )  # the default retention is 7 days
    monkeypatch.setenv("LIGHTMAIL_GC_RETENTION", "0s")
    assert run(capsys, "gc", "run", "--dry-run")[:2] == (
        0,
        f"would purge 1 message(s): 1 blob(s) and 0 orphan blob(s), {len(body)} freed\n",
    )
    assert run(capsys, "gc", "run", "--once")[:2] == (
        0,
        f"purged 1 message(s): 1 blob(s) and 0 orphan blob(s), {len(body)} freed\n",
    )
    assert run(capsys, "gc", "run", "--once")[1].startswith("purged 0 message(s)")


@pytest.mark.parametrize("position", ["before the command", "after the command"])
def test_config_option_is_read_in_either_position(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, position: str
) -> None:
    chosen = tmp_path / "chosen.ini"
    chosen.write_text("[lmtp]\nmax_message_size = 32M\n")
    # A ./config.ini that is not the one asked for (and would not even load).
    (tmp_path / "config.ini").write_text("[gc]\nretention = forever\n")
    for command in (["check-config"], ["domain", "list"]):
        if position == "before the command":
            argv = ["--config", str(chosen), *command]
        else:
            argv = [*command, "--config", str(chosen)]
        code, out, err = run(capsys, *argv)
        assert (code, err) == (0, ""), argv
        if command == ["check-config"]:
            assert out.startswith(f"configuration OK ({chosen})\n")


@pytest.mark.parametrize("before", [True, False])
def test_a_missing_config_file_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, before: bool
) -> None:
    missing = tmp_path / "missing.ini"
    argv = ["--config", str(missing), "check-config"] if before else ["check-config"]
    if not before:
        argv += ["--config", str(missing)]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith("lightmail: config ")
    assert f"--config = '{missing}' is invalid: expected an existing config file\n" in err
