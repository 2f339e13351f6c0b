"""The server's TLS context, shared by implicit TLS (993, 995) and STARTTLS/STLS."""

from __future__ import annotations

import ssl
from pathlib import Path

from lightmail.errors import ConfigError


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or later, Python's secure defaults, no compression.

    ``cert`` is a PEM file with the certificate and its chain; ``key`` the PEM
    private key. Raises :class:`ConfigError` naming ``[tls] cert`` with a
    one-line reason when they do not load or do not belong together.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION  # CRIME
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION  # client-initiated renegotiation DoS
    context.verify_mode = ssl.CERT_NONE  # mail clients are not asked for certificates
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError("tls", "cert", str(cert), _reason(error, key)) from None
    return context


def _reason(error: OSError, key: Path) -> str:
    if isinstance(error, ssl.SSLError):
        if "KEY_VALUES_MISMATCH" in str(error):
            what = f"the private key in {key} does not match the certificate"
        else:
            detail = error.reason or error.strerror or str(error)
            what = f"cannot load the certificate or {key}: {detail}"
    else:
        what = f"{error.filename or key}: {error.strerror or error}"
    return f"a PEM certificate chain matching [tls] key ({' '.join(what.split())})"
