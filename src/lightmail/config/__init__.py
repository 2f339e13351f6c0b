"""Settings: ``config.ini`` plus ``LIGHTMAIL_<SECTION>_<KEY>`` environment overrides.

Every key is declared once, on its field of a settings dataclass
(:mod:`.settings`, :mod:`.services`): its default text, parser, the words shown when a value is
wrong and a line of documentation. The value parsers are in :mod:`.values`.
:func:`load_settings` (:mod:`.loading`) takes each key
from the environment, else the file, else the default; replaces ``{data_dir}``
with the effective ``[server] data_dir``; parses it; and builds the frozen
:class:`Settings`. Anything wrong (a bad value, an unknown section, key or
``LIGHTMAIL_*`` variable, an unreadable file) raises :class:`ConfigError`,
whose ``str()`` is the one line shown at start-up.

Value syntax (also described in ``config.example.ini``):

- sizes: ``2048``, ``2K``, ``64M``, ``1G``, ``1T``; binary units (1K = 1024),
  case-insensitive, an optional trailing ``B`` (``64MB``); no signs or fractions.
- durations: ``90`` (seconds), ``30s``, ``1.5m``, ``12h``, ``7d``; decimal
  fractions allowed, case-insensitive; no signs or exponents.
- booleans: true/false, yes/no, on/off, 1/0.
- addresses: ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH``, comma-separated;
  an empty list means no listener.
- paths: ``~`` is expanded and relative paths are made absolute against the
  current directory.
"""

from __future__ import annotations

from lightmail.config.keys import Key
from lightmail.config.loading import (
    AUTH_DEFAULTS,
    CONFIG_ENV,
    DATA_DIR_PLACEHOLDER,
    ENV_PREFIX,
    KEYS,
    load_settings,
    resolve_config_path,
)
from lightmail.config.services import (
    ApiSettings,
    DavSettings,
    ImapSettings,
    LmtpSettings,
    LoginLimits,
    Pop3Settings,
)
from lightmail.config.settings import (
    AntivirusSettings,
    AuthSettings,
    BlobsSettings,
    DatabaseSettings,
    GcSettings,
    LogSettings,
    NotifySettings,
    ServerSettings,
    Settings,
    TlsSettings,
)
from lightmail.config.values import (
    AntivirusMode,
    ImipMode,
    ListenAddress,
    LogLevel,
    Network,
    ScanErrorPolicy,
    TcpAddress,
    UnixAddress,
    format_duration,
    parse_duration,
    parse_listen,
    parse_size,
)

__all__ = [
    "AUTH_DEFAULTS",
    "CONFIG_ENV",
    "DATA_DIR_PLACEHOLDER",
    "ENV_PREFIX",
    "KEYS",
    "AntivirusMode",
    "AntivirusSettings",
    "ApiSettings",
    "AuthSettings",
    "BlobsSettings",
    "DatabaseSettings",
    "DavSettings",
    "GcSettings",
    "ImapSettings",
    "ImipMode",
    "Key",
    "ListenAddress",
    "LmtpSettings",
    "LogLevel",
    "LogSettings",
    "LoginLimits",
    "Network",
    "NotifySettings",
    "Pop3Settings",
    "ScanErrorPolicy",
    "ServerSettings",
    "Settings",
    "TcpAddress",
    "TlsSettings",
    "UnixAddress",
    "format_duration",
    "load_settings",
    "parse_duration",
    "parse_listen",
    "parse_size",
    "resolve_config_path",
]
