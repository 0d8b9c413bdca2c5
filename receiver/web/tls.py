"""The server's TLS context: HTTPS, and client certificates when asked (mTLS)."""

from __future__ import annotations

import ssl

from receiver.config import TlsSettings


class TlsError(ValueError):
    """The configured certificate, key or CA cannot be used."""


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """An SSL context serving ``cert_file``; requiring a client cert if ``client_ca_file``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file)
        if settings.client_ca_file is not None:
            context.load_verify_locations(cafile=settings.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (ssl.SSLError, OSError) as err:
        raise TlsError(f"tls: cannot load certificates: {err}") from err
    return context
