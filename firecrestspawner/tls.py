"""One shared :class:`ssl.SSLContext` per TLS verification setting.

Building an SSL context loads the whole CA bundle (``load_verify_locations``: about
50 ms for Debian's bundle) synchronously. pyfirecrest's ``AsyncFirecrest`` and
``httpx.AsyncClient`` build one each time they are created unless they are handed a
ready context, so a hub creating a client per user (and per token grant) stalled its
event loop for seconds when many users spawned at once. :func:`ssl_context` builds the
context once per distinct ``verify_tls`` value and hands out the same object afterwards;
both pyfirecrest (``verify: str | bool | ssl.SSLContext``) and httpx accept it.

The meaning of ``verify`` is httpx's:

* ``True``: verify against ``$SSL_CERT_FILE`` if set, else ``$SSL_CERT_DIR`` if set,
  else certifi's bundle (what httpx does with ``verify=True``);
* a string: verify against that CA bundle file, or that directory of hashed CA files;
* ``False``: no verification at all (test set-ups only).

A context may be shared by any number of clients, event loops and threads: httpx only
reads it (and sets the same ALPN protocols on it) when it opens a connection.
"""

from __future__ import annotations

import functools
import os
import ssl


class TLSSettingError(ValueError):
    """The TLS verification setting names no usable CA bundle."""


def ssl_context(verify: bool | str = True) -> ssl.SSLContext:
    """The shared SSL context for the ``verify`` setting (see the module docstring).

    For ``True`` the CA source is looked up in the environment on every call, so a
    changed ``SSL_CERT_FILE``/``SSL_CERT_DIR`` gets its own context. Raises
    :class:`TLSSettingError` naming the setting's value and the fix when the CA bundle
    cannot be loaded.
    """
    if verify is True:
        if os.environ.get("SSL_CERT_FILE"):
            return _build("file", os.environ["SSL_CERT_FILE"], "$SSL_CERT_FILE")
        if os.environ.get("SSL_CERT_DIR"):
            return _build("dir", os.environ["SSL_CERT_DIR"], "$SSL_CERT_DIR")
        import certifi  # httpx's own dependency; only needed here

        return _build("file", certifi.where(), "certifi's CA bundle")
    if verify is False:
        return _unverified()
    if isinstance(verify, str):
        if not verify:
            raise TLSSettingError(
                "FirecRESTSpawner.verify_tls is an empty string: set it to True (the default "
                "CA bundle), False (no verification) or the path of a CA bundle")
        kind = "dir" if os.path.isdir(verify) else "file"
        return _build(kind, verify, "FirecRESTSpawner.verify_tls")
    raise TLSSettingError(
        f"FirecRESTSpawner.verify_tls is {verify!r} ({type(verify).__name__}): it must be "
        "True, False or the path of a CA bundle")


@functools.cache
def _build(kind: str, path: str, origin: str) -> ssl.SSLContext:
    """A verifying context trusting the CA file (``kind='file'``) or directory."""
    try:
        if kind == "dir":
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise TLSSettingError(
            f"cannot load the CA bundle {path!r} given by {origin} ({exc}): point it at a "
            "readable PEM file (or a directory of hashed CA certificates)") from None


@functools.cache
def _unverified() -> ssl.SSLContext:
    """A client context that checks neither the certificate nor the host name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
