"""config.ini and LIGHTMAIL_* environment: parsing, defaults, overrides, errors."""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import ipaddress
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightmail.config import (
    AUTH_DEFAULTS,
    KEYS,
    AntivirusMode,
    AuthSettings,
    LogLevel,
    Settings,
    TcpAddress,
    UnixAddress,
    load_settings,
    parse_duration,
    parse_listen,
    parse_size,
    resolve_config_path,
)
from lightmail.config.values import (
    NETWORKS,
    ScanErrorPolicy,
    choice,
    duration_at_least,
    duration_between,
    format_size,
    integer,
    size_between,
)
from lightmail.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.ini"


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths and ./config.ini are looked up in a fresh folder."""
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "test.ini"
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    return load_settings(write(tmp_path, text), environ or {})


# --- sizes and durations ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("2048", 2048),
        ("2K", 2048),
        ("2k", 2048),
        ("2KB", 2048),
        ("2kb", 2048),
        ("512B", 512),
        ("64M", 64 << 20),
        ("64MB", 64 << 20),
        ("1G", 1 << 30),
        ("1g", 1 << 30),
        ("2T", 2 << 40),
        (" 10M ", 10 << 20),
        ("007", 7),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "12Q",
        "-1",
        "+1",
        "1.5M",
        "M",
        "K2",
        "1 K",
        "2KK",
        "2KBB",
        "1_000",
        "0x10",
        "1e3",
        "\u0661\u0662",  # Arabic digits
        "1\u212a",  # Kelvin sign, which matches "k" case-insensitively outside ASCII
    ],
)
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0.0),
        ("90", 90.0),
        ("30s", 30.0),
        ("30S", 30.0),
        ("5m", 300.0),
        ("1.5m", 90.0),
        ("12h", 43200.0),
        ("7d", 604800.0),
        ("0.25", 0.25),
        (" 2h ", 7200.0),
    ],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        *("", "s", "-1", "+1", "1.", ".5", "5w", "5 m", "1e3", "inf", "nan", "1:30", "1h30m"),
        "9" * 400,
        "\u0661",  # Arabic digit
        "2\u017f",  # long s, which matches "s" case-insensitively outside ASCII
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@given(
    st.integers(0, 10**15),
    st.sampled_from(sorted(_SIZE_UNITS)),
    st.booleans(),
    st.booleans(),
)
def test_parse_size_round_trip(number: int, unit: str, lower: bool, suffix_b: bool) -> None:
    text = f"{number}{unit}{'B' if suffix_b else ''}"
    assert parse_size(text.lower() if lower else text) == number * _SIZE_UNITS[unit]


@given(st.integers(0, 10**9), st.integers(0, 999), st.sampled_from(sorted(_DURATION_UNITS)))
def test_parse_duration_round_trip(whole: int, thousandths: int, unit: str) -> None:
    seconds = parse_duration(f"{whole}.{thousandths:03d}{unit}")
    assert seconds == pytest.approx((whole + thousandths / 1000) * _DURATION_UNITS[unit])
    assert parse_duration(f"{whole}{unit.upper()}") == whole * _DURATION_UNITS[unit]


@given(st.integers(0, 1 << 50))
def test_format_size_reads_back(size: int) -> None:
    assert parse_size(format_size(size)) == size
    assert len(format_size(size)) <= len(str(size))


def test_value_kinds_say_their_bounds() -> None:
    # The words a wrong value is told to be come from the same numbers as the check.
    assert integer(1, 100_000).allowed == "an integer from 1 to 100000"
    assert size_between(255, 16 << 10).allowed == "a size from 255 to 16K"
    assert size_between(1024, 1 << 30).allowed == "a size from 1K to 1G"
    assert duration_between(0, 86400).allowed == "a duration from 0 to 1d"
    assert duration_at_least(1800).allowed == "a duration of at least 30m"
    assert choice(ScanErrorPolicy).allowed == "one of tempfail, accept, reject"
    other = NETWORKS.saying("other words")
    assert (other.parse, other.allowed) == (NETWORKS.parse, "other words")


@given(st.text(max_size=20))
def test_parsers_raise_only_value_error(text: str) -> None:
    for parse in (parse_size, parse_duration, parse_listen):
        with contextlib.suppress(ValueError):
            parse(text)


# --- listen addresses ------------------------------------------------------


def test_parse_listen_forms() -> None:
    assert parse_listen("127.0.0.1:1143, [::1]:1143,unix:/run/lm.sock , localhost:0") == (
        TcpAddress("127.0.0.1", 1143),
        TcpAddress("::1", 1143),
        UnixAddress(Path("/run/lm.sock")),
        TcpAddress("localhost", 0),
    )
    assert parse_listen("") == ()
    assert parse_listen("  ") == ()
    assert parse_listen("[0:0::1]:25") == (TcpAddress("::1", 25),)
    assert parse_listen("[::]:65535") == (TcpAddress("::", 65535),)
    assert parse_listen("unix:lmtp.sock") == (UnixAddress(Path.cwd() / "lmtp.sock"),)


def test_listen_address_str() -> None:
    assert str(TcpAddress("127.0.0.1", 1143)) == "127.0.0.1:1143"
    assert str(TcpAddress("::1", 1143)) == "[::1]:1143"
    assert str(TcpAddress("mail.example.org", 25)) == "mail.example.org:25"
    assert str(UnixAddress(Path("/run/lm.sock"))) == "unix:/run/lm.sock"


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "127.0.0.1:",
        ":1143",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:http",
        "256.0.0.1:1143",
        "::1:1143",
        "[::1]",
        "[::1]1143",
        "[127.0.0.1]:1143",
        "[nothost]:1143",
        "bad_host:1143",
        "-bad.example:25",
        "unix:",
        "127.0.0.1:1143,",
        "127.0.0.1:1143,,[::1]:1143",
        "tcp://127.0.0.1:1143",
    ],
)
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several parsers, several messages
        parse_listen(text)


# --- defaults --------------------------------------------------------------


def test_defaults_without_file(tmp_path: Path) -> None:
    settings = load_settings(None, {})
    data_dir = tmp_path / "lightmail-data"
    assert settings.config_file is None
    assert settings.server.data_dir == data_dir
    assert settings.server.hostname == socket.getfqdn()
    assert settings.database.url == f"sqlite+aiosqlite:///{data_dir}/lightmail.db"
    assert settings.database.pool_size == 10
    assert settings.database.connect_timeout == 10.0
    assert settings.blobs.url == f"file:{data_dir}/blobs"
    assert settings.blobs.path == data_dir / "blobs"
    assert settings.blobs.bucket is None
    assert (settings.blobs.endpoint, settings.blobs.region) == ("", "us-east-1")
    assert (settings.blobs.access_key, settings.blobs.secret_key) == ("", "")
    assert settings.imap.listen == (TcpAddress("127.0.0.1", 1143),)
    assert settings.imap.plaintext_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.pop3.listen == (TcpAddress("127.0.0.1", 1110),)
    assert settings.lmtp.listen == (
        TcpAddress("127.0.0.1", 2424),
        UnixAddress(data_dir / "lmtp.sock"),
    )
    assert settings.lmtp.max_message_size == 64 * 1024 * 1024
    assert (settings.lmtp.timeout, settings.lmtp.data_timeout) == (600.0, 600.0)
    assert settings.api.listen == (TcpAddress("127.0.0.1", 8080),)
    assert (settings.api.header_timeout, settings.api.max_connections) == (30.0, 1000)
    assert settings.antivirus.mode is AntivirusMode.OFF
    assert not settings.antivirus.enabled
    assert settings.antivirus.clamd == TcpAddress("127.0.0.1", 3310)
    assert settings.gc == type(settings.gc)(True, 300.0, 500, 7 * 86400.0, 86400.0)
    assert not settings.tls.enabled
    assert (settings.tls.cert, settings.tls.key) == (None, None)
    # Implicit TLS needs a certificate: without one, tls_listen is ignored.
    assert settings.imap.tls_listen == ()
    assert settings.pop3.tls_listen == ()
    assert settings.log.level is LogLevel.INFO
    assert settings.imap.max_keywords_per_mailbox == 100
    assert settings.imap.max_keywords_per_message == 50


def test_secrets_are_not_in_repr() -> None:
    settings = load_settings(
        None,
        {
            "LIGHTMAIL_DATABASE_URL": "mysql+asyncmy://lm:hunter2@db:3306/lightmail",
            "LIGHTMAIL_BLOBS_ACCESS_KEY": "AKIA",
            "LIGHTMAIL_BLOBS_SECRET_KEY": "topsecret",
        },
    )
    assert "hunter2" not in repr(settings)
    assert "topsecret" not in repr(settings)


def test_plaintext_allowed() -> None:
    imap = load_settings(None, {"LIGHTMAIL_IMAP_PLAINTEXT_NETWORKS": "10.0.0.0/8, ::1"}).imap
    assert imap.plaintext_allowed("10.1.2.3")
    assert imap.plaintext_allowed("::ffff:10.1.2.3")
    assert imap.plaintext_allowed(ipaddress.ip_address("::1"))
    assert not imap.plaintext_allowed("127.0.0.1")
    assert not imap.plaintext_allowed("192.0.2.1")
    none = load_settings(None, {"LIGHTMAIL_IMAP_PLAINTEXT_NETWORKS": ""}).imap
    assert none.plaintext_networks == ()
    assert not none.plaintext_allowed("127.0.0.1")


def test_session_limits_are_declared_once_with_per_protocol_defaults() -> None:
    settings = load_settings(None, {"LIGHTMAIL_IMAP_PLAINTEXT_NETWORKS": ""})
    # POP3 has its own plaintext_networks: [imap]'s no longer applies to it.
    assert settings.imap.plaintext_networks == ()
    assert settings.pop3.plaintext_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.pop3.plaintext_allowed("127.0.0.1")
    assert (settings.imap.max_line_length, settings.pop3.max_line_length) == (65536, 1024)
    for section in (settings.imap, settings.pop3):
        assert section.max_commands_before_login == 30
        assert section.max_connections_per_user == 50
    assert settings.lmtp.max_bad_commands == 20
    pop3 = load_settings(None, {"LIGHTMAIL_POP3_MAX_LINE_LENGTH": "255"}).pop3
    assert pop3.max_line_length == 255
    with pytest.raises(ConfigError):
        load_settings(None, {"LIGHTMAIL_POP3_MAX_LINE_LENGTH": "254"})
    with pytest.raises(ConfigError):
        load_settings(None, {"LIGHTMAIL_IMAP_MAX_LINE_LENGTH": "255"})


# --- values from the file --------------------------------------------------


def test_file_values(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path,
        """
[server]
data_dir = /srv/lm
hostname = mail.example.org
[database]
url = mysql+asyncmy://root@127.0.0.1:3306/test
pool_size = 3
[blobs]
url = s3://mail-bucket/prod/lm/
endpoint = http://127.0.0.1:8333
access_key = AK
secret_key = S%K
[imap]
listen =
[lmtp]
Listen = unix:{data_dir}/lmtp.sock,
    [::1]:24
max_message_size = 10mb
[antivirus]
mode = Quarantine
clamd = unix:/run/clamav/clamd.ctl
[gc]
enabled = off
interval = 1.5m
[log]
level = DEBUG
""",
    )
    assert settings.server.data_dir == Path("/srv/lm")
    assert settings.server.hostname == "mail.example.org"
    assert settings.database.url == "mysql+asyncmy://root@127.0.0.1:3306/test"
    assert settings.database.pool_size == 3
    assert settings.blobs.url == "s3://mail-bucket/prod/lm"
    assert (settings.blobs.bucket, settings.blobs.prefix, settings.blobs.path) == (
        "mail-bucket",
        "prod/lm",
        None,
    )
    assert settings.blobs.secret_key == "S%K"
    assert settings.imap.listen == ()
    assert settings.lmtp.listen == (
        UnixAddress(Path("/srv/lm/lmtp.sock")),
        TcpAddress("::1", 24),
    )
    assert settings.lmtp.max_message_size == 10 << 20
    assert settings.antivirus.mode is AntivirusMode.QUARANTINE
    assert settings.antivirus.enabled
    assert settings.antivirus.clamd == UnixAddress(Path("/run/clamav/clamd.ctl"))
    assert not settings.gc.enabled
    assert settings.gc.interval == 90.0
    assert settings.log.level is LogLevel.DEBUG


@pytest.mark.parametrize(
    ("url", "effective"),
    [
        ("file:/srv/blobs", "file:/srv/blobs"),
        ("file:///srv/blobs/", "file:/srv/blobs"),
        ("file:blobs", "file:{cwd}/blobs"),
        ("file:{data_dir}/b", "file:{cwd}/lightmail-data/b"),
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("s3://my.bucket-1/a/b", "s3://my.bucket-1/a/b"),
    ],
)
def test_blobs_url_forms(tmp_path: Path, url: str, effective: str) -> None:
    settings = load_settings(None, {"LIGHTMAIL_BLOBS_URL": url})
    assert settings.blobs.url == effective.format(cwd=tmp_path)


def test_relative_data_dir_is_made_absolute(tmp_path: Path) -> None:
    settings = load_settings(None, {"LIGHTMAIL_SERVER_DATA_DIR": "var/../mail"})
    assert settings.server.data_dir == tmp_path / "mail"
    assert settings.database.url == f"sqlite+aiosqlite:///{tmp_path}/mail/lightmail.db"
    assert UnixAddress(tmp_path / "mail" / "lmtp.sock") in settings.lmtp.listen


# --- errors ----------------------------------------------------------------


def test_error_message_is_one_exact_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, "[lmtp]\nmax_message_size = 12Q\n")
    assert str(caught.value) == (
        "config [lmtp] max_message_size = '12Q' is invalid: "
        "expected a size such as 2048, 2K, 64M or 1G"
    )


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("server", "data_dir", ""),
        ("server", "hostname", "bad_host"),
        ("database", "url", "postgresql://localhost/lm"),
        ("database", "url", "sqlite+aiosqlite://"),
        ("database", "url", "mysql+asyncmy://root@localhost:3306/"),
        ("database", "url", "mysql+asyncmy://root@localhost:99999/lm"),
        ("database", "pool_size", "0"),
        ("database", "pool_size", "ten"),
        ("database", "connect_timeout", "0"),
        ("blobs", "url", "/srv/blobs"),
        ("blobs", "url", "file:"),
        ("blobs", "url", "file://host/srv"),
        ("blobs", "url", "s3://Bad_Bucket/x"),
        ("blobs", "url", "s3://bucket//x"),
        ("blobs", "endpoint", "127.0.0.1:8333"),
        ("blobs", "endpoint", "ftp://example.org"),
        ("blobs", "region", "us east"),
        ("imap", "listen", "127.0.0.1:99999"),
        ("imap", "tls_listen", "::1:993"),
        ("imap", "plaintext_networks", "127.0.0.1/8"),
        ("imap", "plaintext_networks", "localhost"),
        ("imap", "max_keywords_per_mailbox", "0"),
        ("imap", "max_keywords_per_mailbox", "1001"),
        ("imap", "max_keywords_per_message", "0"),
        ("imap", "max_keywords_per_message", "many"),
        ("pop3", "listen", "localhost"),
        ("pop3", "tls_listen", "unix:"),
        ("lmtp", "listen", "127.0.0.1:2424,"),
        ("lmtp", "max_message_size", "0"),
        ("lmtp", "max_message_size", "1.5M"),
        ("lmtp", "data_timeout", "0"),
        ("lmtp", "data_timeout", "soon"),
        ("api", "listen", "*:8080"),
        ("api", "header_timeout", "0s"),
        ("api", "header_timeout", "-5s"),
        ("api", "max_connections", "0"),
        ("api", "max_connections", "many"),
        ("antivirus", "mode", "drop"),
        ("antivirus", "clamd", "127.0.0.1:3310, 127.0.0.1:3311"),
        ("antivirus", "clamd", "127.0.0.1:0"),
        ("gc", "enabled", "maybe"),
        ("gc", "interval", "0s"),
        ("gc", "batch_size", "100001"),
        ("gc", "retention", "1w"),
        ("gc", "orphan_grace", "-1h"),
        ("notify", "url", "http://127.0.0.1:6379"),
        ("notify", "url", "redis:///0"),
        ("notify", "url", "redis://127.0.0.1:6379/cache"),
        ("notify", "url", "redis://127.0.0.1:6379/0?ssl=true"),
        ("notify", "url", "redis://127.0.0.1:99999/0"),
        ("notify", "poll_interval", "0"),
        ("log", "level", "trace"),
    ],
)
def test_bad_value_names_section_key_and_value(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, f"[{section}]\n{key} = {value}\n")
    error = caught.value
    assert (error.section, error.key, error.value) == (section, key, value)
    assert error.allowed
    line = str(error)
    assert line.startswith(f"config [{section}] {key} = {value!r} is invalid: expected ")
    assert "\n" not in line


def test_bad_tls_path_is_reported(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("key")
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, f"[tls]\ncert = {tmp_path}/missing.pem\nkey = {key}\n")
    assert (caught.value.section, caught.value.key) == ("tls", "cert")
    assert caught.value.value == f"{tmp_path}/missing.pem"
    assert "No such file" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["", "redis://127.0.0.1:6379/0", "redis://redis.example", "rediss://app:pw@[::1]:6380/15"],
)
def test_notify_url_forms(url: str) -> None:
    assert load_settings(None, {"LIGHTMAIL_NOTIFY_URL": url}).notify.url == url


def test_notify_ca_file_is_for_tls_and_must_be_readable(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("certificates")
    for url, file, allowed in [
        ("redis://r:6379/0", ca, "empty unless url is rediss://"),
        ("rediss://r:6379/0", tmp_path / "missing.pem", "a readable file (No such file"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_text(tmp_path, f"[notify]\nurl = {url}\nca_file = {file}\n")
        assert (caught.value.section, caught.value.key) == ("notify", "ca_file")
        assert caught.value.allowed.startswith(allowed)
    settings = load_text(tmp_path, f"[notify]\nurl = rediss://r:6379/0\nca_file = {ca}\n")
    assert settings.notify.ca_file == ca


def test_notify_password_in_the_url_or_the_key_not_both(tmp_path: Path) -> None:
    text = "[notify]\nurl = redis://:hunter2@r:6379/0\npassword = other\n"
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    assert (caught.value.section, caught.value.key) == ("notify", "password")
    assert "hunter2" not in str(caught.value)
    assert "other" not in str(caught.value)
    assert "hunter2" not in repr(load_text(tmp_path, text.replace("other", "")))


def test_database_password_is_hidden_in_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, "[database]\nurl = mysql+asyncmy://lm:hunter2@db:99999/lm\n")
    assert "hunter2" not in str(caught.value)
    assert caught.value.value == "mysql+asyncmy://lm:***@db:99999/lm"


def test_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, "[lmtp]\nmax_size = 10M\n")
    assert str(caught.value) == (
        "config [lmtp] max_size = '10M' is invalid: "
        "expected one of the keys max_bad_commands, listen, max_message_size, max_recipients, "
        "timeout, data_timeout, socket_mode, socket_owner, socket_group, detail_mailbox"
    )


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, "[smtp]\nlisten = 127.0.0.1:25\n")
    assert (caught.value.section, caught.value.key) == ("smtp", "listen")
    assert "one of the sections server, database, blobs, imap" in str(caught.value)


@pytest.mark.parametrize("text", ["[IMAP]\nlisten =\n", "[smtp]\n", "[DEFAULT]\nlisten = x\n"])
def test_other_unknown_sections(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="expected one of the sections"):
        load_text(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("listen = 1\n", "no section headers"),
        ("[imap]\nlisten\n", "parsing errors"),
        ("[imap]\n[imap]\n", "already exists"),
        ("[imap]\nlisten = a\nlisten = b\n", "already exists"),
    ],
)
def test_broken_file(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert (caught.value.section, caught.value.key, caught.value.value) == ("", "file", str(path))
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_settings(tmp_path / "missing.ini", {})
    with pytest.raises(ConfigError, match="Is a directory"):
        load_settings(tmp_path, {})
    binary = tmp_path / "binary.ini"
    binary.write_bytes(b"\xff\xfe[imap]\n")
    with pytest.raises(ConfigError, match="readable UTF-8 file"):
        load_settings(binary, {})


# --- environment -----------------------------------------------------------


def test_environment_beats_file(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path,
        "[lmtp]\nmax_message_size = 1M\n[gc]\nbatch_size = 7\n",
        {"LIGHTMAIL_LMTP_MAX_MESSAGE_SIZE": " 2M ", "LIGHTMAIL_IMAP_LISTEN": "[::1]:143"},
    )
    assert settings.lmtp.max_message_size == 2 << 20
    assert settings.gc.batch_size == 7
    assert settings.imap.listen == (TcpAddress("::1", 143),)


def test_environment_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"LIGHTMAIL_GC_INTERVAL": "soon"})
    assert str(caught.value) == (
        "config [gc] interval = 'soon' is invalid: expected a duration such as "
        "90, 30s, 5m, 12h or 7d, above 0 (set by LIGHTMAIL_GC_INTERVAL)"
    )


@pytest.mark.parametrize(
    ("name", "section", "key"),
    [
        ("LIGHTMAIL_LMTP_MAX_SIZE", "lmtp", "max_size"),
        ("LIGHTMAIL_SMTP_LISTEN", "smtp", "listen"),
        ("LIGHTMAIL_DEBUG", "debug", ""),
        ("LIGHTMAIL_", "", ""),
    ],
)
def test_environment_unknown_names(name: str, section: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {name: "x"})
    assert (caught.value.section, caught.value.key) == (section, key)
    assert str(caught.value).endswith(f"(set by {name})")


def test_environment_other_variables_are_ignored() -> None:
    settings = load_settings(
        None, {"LIGHTMAIL_CONFIG": "/nonexistent.ini", "PATH": "/bin", "LIGHTMAILX": "1"}
    )
    assert settings.config_file is None


def test_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTMAIL_LOG_LEVEL", "warning")
    assert load_settings().log.level is LogLevel.WARNING


# --- which file ------------------------------------------------------------


def test_resolve_config_path(tmp_path: Path) -> None:
    cli = write(tmp_path, "")
    env = tmp_path / "env.ini"
    env.write_text("")
    environ = {"LIGHTMAIL_CONFIG": str(env)}
    assert resolve_config_path(str(cli), environ) == cli
    assert resolve_config_path(None, environ) == env
    assert resolve_config_path(None, {"LIGHTMAIL_CONFIG": "env.ini"}) == env
    assert resolve_config_path(None, {}) is None
    assert resolve_config_path(None, {"LIGHTMAIL_CONFIG": ""}) is None
    (tmp_path / "config.ini").write_text("")
    assert resolve_config_path(None, {}) == tmp_path / "config.ini"


@pytest.mark.parametrize(
    ("cli", "environ", "key"),
    [
        ("missing.ini", {}, "--config"),
        ("", {}, "--config"),
        (".", {}, "--config"),
        ("missing.ini", {"LIGHTMAIL_CONFIG": "other.ini"}, "--config"),
        (None, {"LIGHTMAIL_CONFIG": "missing.ini"}, "LIGHTMAIL_CONFIG"),
    ],
)
def test_resolve_config_path_missing(cli: str | None, environ: dict[str, str], key: str) -> None:
    (Path.cwd() / "config.ini").write_text("")  # never a fallback for a named file
    with pytest.raises(ConfigError) as caught:
        resolve_config_path(cli, environ)
    assert (caught.value.section, caught.value.key) == ("", key)
    assert "expected an existing config file" in str(caught.value)


# --- TLS and other pairs ---------------------------------------------------


def test_tls_enabled_keeps_tls_listen(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("cert")
    (tmp_path / "key.pem").write_text("key")
    settings = load_text(tmp_path, "[tls]\ncert = cert.pem\nkey = {data_dir}/../key.pem\n")
    assert settings.tls.enabled
    assert (settings.tls.cert, settings.tls.key) == (tmp_path / "cert.pem", tmp_path / "key.pem")
    assert settings.imap.tls_listen == (TcpAddress("127.0.0.1", 1993),)
    assert settings.pop3.tls_listen == (TcpAddress("127.0.0.1", 1995),)


@pytest.mark.parametrize(
    ("section", "given", "missing"),
    [
        ("tls", "cert", "key"),
        ("tls", "key", "cert"),
        ("blobs", "access_key", "secret_key"),
        ("blobs", "secret_key", "access_key"),
    ],
)
def test_pairs_need_both(tmp_path: Path, section: str, given: str, missing: str) -> None:
    (tmp_path / "file.pem").write_text("x")
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, f"[{section}]\n{given} = file.pem\n")
    assert (caught.value.section, caught.value.key, caught.value.value) == (section, missing, "")
    assert str(caught.value).endswith(f"expected a value when {given} is set")


def test_a_blob_cache_is_only_for_s3(tmp_path: Path) -> None:
    settings = load_text(tmp_path, "[blobs]\nurl = s3://mail\ncache_folder = copies\n")
    assert (settings.blobs.cache_folder, settings.blobs.cache_size) == (
        tmp_path / "copies",
        1 << 30,
    )
    assert load_text(tmp_path, "").blobs.cache_folder is None
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, "[blobs]\ncache_folder = copies\n")
    error = caught.value
    assert (error.section, error.key) == ("blobs", "cache_folder")
    assert str(error).endswith("expected empty unless url is s3://")


def test_keywords_per_message_cannot_exceed_per_mailbox(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path, "[imap]\nmax_keywords_per_mailbox = 20\nmax_keywords_per_message = 20\n"
    )
    assert (settings.imap.max_keywords_per_mailbox, settings.imap.max_keywords_per_message) == (
        20,
        20,
    )
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, "[imap]\nmax_keywords_per_mailbox = 20\n")
    error = caught.value
    assert (error.section, error.key, error.value) == ("imap", "max_keywords_per_message", "50")
    assert str(error).endswith("expected an integer from 1 to max_keywords_per_mailbox (20)")


def test_tls_listen_is_still_validated_without_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[pop3\] tls_listen"):
        load_text(tmp_path, "[pop3]\ntls_listen = nonsense\n")


# --- the example file ------------------------------------------------------


def test_example_file_loads_as_the_defaults() -> None:
    settings = load_settings(EXAMPLE, {})
    assert settings.config_file == EXAMPLE
    assert dataclasses.replace(settings, config_file=None) == load_settings(None, {})


def test_example_file_lists_every_key_in_order() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(EXAMPLE, encoding="utf-8")
    listed = [(section, key) for section in parser.sections() for key in parser[section]]
    known = [
        (section.name, key.name)
        for section in dataclasses.fields(Settings)
        if section.name != "config_file"
        for key in dataclasses.fields(getattr(load_settings(None, {}), section.name))
    ]
    assert listed == known
    # Each with the default text it is declared with, and nothing else.
    example = [(s, k, parser[s][k]) for s in parser.sections() for k in parser[s]]
    assert example == [(key.section, key.name, key.default) for key in KEYS]
    assert all(key.doc and key.allowed for key in KEYS)


# --- [auth] ----------------------------------------------------------------


def test_auth_defaults_and_values(tmp_path: Path) -> None:
    assert (
        load_settings(None, {}).auth
        == AUTH_DEFAULTS
        == AuthSettings(
            failure_delay=2.0,
            cache_ttl=300.0,
            throttle_after=3,
            throttle_delay=1.0,
            throttle_max_delay=60.0,
            throttle_reset=900.0,
        )
    )
    settings = load_text(
        tmp_path,
        "[auth]\nfailure_delay = 0\ncache_ttl = 0\nthrottle_after = 0\n"
        "throttle_delay = 0.5s\nthrottle_max_delay = 0.5s\nthrottle_reset = 1h\n",
        {"LIGHTMAIL_AUTH_FAILURE_DELAY": "1.5s"},
    )
    assert settings.auth == AuthSettings(1.5, 0.0, 0, 0.5, 0.5, 3600.0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("failure_delay", "-1"),
        ("failure_delay", "2m"),  # a login answered after minutes is a hung server
        ("failure_delay", "soon"),
        ("cache_ttl", "2d"),
        ("cache_ttl", "5 m"),
        ("throttle_after", "-1"),
        ("throttle_after", "1001"),
        ("throttle_after", "three"),
        ("throttle_delay", "0"),
        ("throttle_max_delay", "0s"),
        ("throttle_reset", "0"),
        ("throttle_reset", "never"),
    ],
)
def test_auth_bad_values(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, f"[auth]\n{key} = {value}\n")
    assert (caught.value.section, caught.value.key, caught.value.value) == ("auth", key, value)
    assert str(caught.value).startswith(f"config [auth] {key} = {value!r} is invalid: expected ")


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("throttle_delay = 2m\n", "throttle_max_delay", "at least throttle_delay (2m)"),
        ("throttle_max_delay = 1h\n", "throttle_reset", "at least throttle_max_delay (1h)"),
    ],
)
def test_auth_cap_and_reset_are_not_below_what_they_bound(
    tmp_path: Path, text: str, key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, "[auth]\n" + text)
    assert (caught.value.section, caught.value.key) == ("auth", key)
    assert str(caught.value).endswith(f"expected a duration of {allowed}")
