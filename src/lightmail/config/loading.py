"""Loading: ``LIGHTMAIL_<SECTION>_<KEY>``, else ``config.ini``, else the default.

The keys are read off the settings dataclasses (:data:`KEYS`), so a key
declared on a settings field is read, overridden and validated here with
nothing else to add.
"""

from __future__ import annotations

import configparser
import os
import re
import socket
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from lightmail.config.keys import Key, declared_keys
from lightmail.config.settings import AuthSettings, Settings, TlsSettings
from lightmail.config.values import absolute_path, format_duration
from lightmail.errors import ConfigError

ENV_PREFIX = "LIGHTMAIL_"
CONFIG_ENV = "LIGHTMAIL_CONFIG"  # names the file; never an override
DATA_DIR_PLACEHOLDER = "{data_dir}"
_URL_PASSWORD = re.compile(r"(://[^/:@]*:)[^@]*@")

# Every key, section by section, in declaration order: [server] data_dir comes
# first, so later values may contain {data_dir}.
KEYS: tuple[Key, ...] = declared_keys(Settings)

# [auth] with every key at its default: for code that logs no one in from a
# configuration file (the CLI's management commands, tools, tests).
_AUTH_DEFAULT_VALUES: dict[str, Any] = {
    key.name: key.parse(key.default) for key in KEYS if key.section == "auth"
}
AUTH_DEFAULTS = AuthSettings(**_AUTH_DEFAULT_VALUES)

_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    section: tuple(key.name for key in KEYS if key.section == section)
    for section in dict.fromkeys(key.section for key in KEYS)
}
_SECTION_CLASSES: dict[str, type[Any]] = {
    name: cls for name, cls in typing.get_type_hints(Settings).items() if name in _SECTION_KEYS
}

# (section, key) -> (text, origin); origin is "" for the file or " (set by NAME)"
_Given: TypeAlias = dict[tuple[str, str], tuple[str, str]]


def _unknown(section: str, key: str, value: str, origin: str = "") -> ConfigError:
    known = _SECTION_KEYS.get(section)
    if known is None:
        allowed = f"one of the sections {', '.join(_SECTION_KEYS)}"
    else:
        allowed = f"one of the keys {', '.join(known)}"
    return ConfigError(section, key, _redact(value), allowed + origin)


def _redact(text: str) -> str:
    """Hide the password of a URL such as ``mysql+asyncmy://user:pw@host/db``."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def _one_line(error: Exception) -> str:
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return " ".join(text.split())


def _read_file(path: Path) -> _Given:
    parser = configparser.ConfigParser(interpolation=None, empty_lines_in_values=False)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError) as error:
        allowed = f"a readable UTF-8 file ({_one_line(error)})"
        raise ConfigError("", "file", str(path), allowed) from error
    except configparser.Error as error:
        allowed = f"valid INI syntax ({_one_line(error)})"
        raise ConfigError("", "file", str(path), allowed) from error
    if parser.defaults():  # [DEFAULT] would leak its keys into every section
        key, value = next(iter(parser.defaults().items()))
        raise _unknown(parser.default_section, key, value)
    given: _Given = {}
    for section in parser.sections():
        items = parser.items(section)
        if section not in _SECTION_KEYS:
            key, value = items[0] if items else ("(empty section)", "")
            raise _unknown(section, key, value)
        for key, value in items:
            if key not in _SECTION_KEYS[section]:
                raise _unknown(section, key, value)
            given[section, key] = (value, "")
    return given


def _read_environ(environ: Mapping[str, str]) -> _Given:
    given: _Given = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        section, _, key = name.removeprefix(ENV_PREFIX).lower().partition("_")
        origin = f" (set by {name})"
        if key not in _SECTION_KEYS.get(section, ()):
            raise _unknown(section, key, environ[name], origin)
        given[section, key] = (environ[name].strip(), origin)
    return given


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (None: defaults only), apply ``LIGHTMAIL_*`` overrides, validate.

    ``environ`` defaults to ``os.environ``. Raises :class:`ConfigError`.
    """
    given: _Given = {} if path is None else _read_file(path)
    given |= _read_environ(os.environ if environ is None else environ)
    values: dict[str, dict[str, Any]] = {section: {} for section in _SECTION_KEYS}
    data_dir = ""
    for key in KEYS:
        text, origin = given.get((key.section, key.name), (key.default, ""))
        try:
            value = key.parse(text.replace(DATA_DIR_PLACEHOLDER, data_dir) if data_dir else text)
        except ValueError:
            raise ConfigError(key.section, key.name, _redact(text), key.allowed + origin) from None
        values[key.section][key.name] = value
        if (key.section, key.name) == ("server", "data_dir"):
            data_dir = str(value)
    return _build(values, Path(data_dir), path)


def _build(values: dict[str, dict[str, Any]], data_dir: Path, path: Path | None) -> Settings:
    """Fill the defaults that depend on other values, check the pairs, build."""
    values["server"]["hostname"] = values["server"]["hostname"] or socket.getfqdn()
    values["database"]["url"] = (
        values["database"]["url"] or f"sqlite+aiosqlite:///{data_dir / 'lightmail.db'}"
    )
    values["blobs"]["url"] = values["blobs"]["url"] or f"file:{data_dir / 'blobs'}"
    _check_pair(values, "blobs", "access_key", "secret_key")
    blobs = values["blobs"]
    if blobs["cache_folder"] is not None and not blobs["url"].startswith("s3://"):
        raise ConfigError(
            "blobs", "cache_folder", str(blobs["cache_folder"]), "empty unless url is s3://"
        )
    _check_pair(values, "tls", "cert", "key")
    _check_order(values, "auth", "throttle_delay", "throttle_max_delay")
    _check_order(values, "auth", "throttle_max_delay", "throttle_reset")
    imap = values["imap"]
    if imap["max_keywords_per_message"] > imap["max_keywords_per_mailbox"]:
        raise ConfigError(
            "imap",
            "max_keywords_per_message",
            str(imap["max_keywords_per_message"]),
            f"an integer from 1 to max_keywords_per_mailbox ({imap['max_keywords_per_mailbox']})",
        )
    _check_notify(values["notify"])
    tls = TlsSettings(**values["tls"])
    for name, file in (("cert", tls.cert), ("key", tls.key)):
        if file is not None:
            _check_readable("tls", name, file)
    if not tls.enabled:  # implicit TLS needs a certificate: tls_listen is ignored
        values["imap"]["tls_listen"] = values["pop3"]["tls_listen"] = ()
        values["dav"]["tls_listen"] = ()
    sections = {
        name: cls(**values[name]) for name, cls in _SECTION_CLASSES.items() if name != "tls"
    }
    return Settings(**sections, tls=tls, config_file=path)


def _check_pair(values: dict[str, dict[str, Any]], section: str, first: str, second: str) -> None:
    """Both keys set or neither; the error names the empty one (never shows a secret)."""
    for one, other in ((first, second), (second, first)):
        if values[section][one] and not values[section][other]:
            raise ConfigError(section, other, "", f"a value when {one} is set")


def _check_order(values: dict[str, dict[str, Any]], section: str, low: str, high: str) -> None:
    """``high`` must not be below ``low`` (a cap below the first step means nothing)."""
    if values[section][high] < values[section][low]:
        raise ConfigError(
            section,
            high,
            format_duration(values[section][high]),
            f"a duration of at least {low} ({format_duration(values[section][low])})",
        )


def _check_notify(notify: dict[str, Any]) -> None:
    """A CA file only for TLS (and readable); the password in the URL or the key, not both."""
    url = urlsplit(notify["url"])
    if notify["ca_file"] is not None:
        if url.scheme != "rediss":
            raise ConfigError(
                "notify", "ca_file", str(notify["ca_file"]), "empty unless url is rediss://"
            )
        _check_readable("notify", "ca_file", notify["ca_file"])
    if notify["password"] and url.password is not None:
        raise ConfigError("notify", "password", "***", "empty when the url has a password")


def _check_readable(section: str, key: str, file: Path) -> None:
    try:
        with file.open("rb"):
            pass
    except OSError as error:
        raise ConfigError(
            section, key, str(file), f"a readable file ({_one_line(error)})"
        ) from error


def resolve_config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path | None:
    """``--config FILE``, else ``$LIGHTMAIL_CONFIG``, else ``./config.ini`` if present, else None.

    A file named by the option or the variable must exist (ConfigError otherwise);
    an empty ``LIGHTMAIL_CONFIG`` counts as unset.
    """
    for key, value in (("--config", cli_value), (CONFIG_ENV, environ.get(CONFIG_ENV) or None)):
        if value is None:
            continue
        try:
            path = absolute_path(value)
        except ValueError:
            path = None
        if path is None or not path.is_file():
            raise ConfigError("", key, value, "an existing config file")
        return path
    default = Path("config.ini")
    return default.absolute() if default.is_file() else None
