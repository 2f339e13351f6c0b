"""server_context: loads a certificate and key or says in one line why not."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from lightmail.errors import ConfigError
from lightmail.net import server_context


def test_context_is_tls12_or_later_without_compression(cert_files: tuple[Path, Path]) -> None:
    context = server_context(*cert_files)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert not context.check_hostname


def test_missing_file_is_a_config_error(tmp_path: Path, cert_files: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match=r"\[tls\] cert .*No such file") as raised:
        server_context(tmp_path / "missing.pem", cert_files[1])
    assert "\n" not in str(raised.value)


def test_key_of_another_certificate_is_a_config_error(
    tmp_path: Path, ca: trustme.CA, cert_files: tuple[Path, Path]
) -> None:
    other_key = tmp_path / "other.key"
    ca.issue_cert("other.example").private_key_pem.write_to_path(str(other_key))
    with pytest.raises(ConfigError, match="does not match the certificate"):
        server_context(cert_files[0], other_key)


def test_garbage_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"\[tls\] cert") as raised:
        server_context(junk, junk)
    assert "\n" not in str(raised.value)
