"""Per-device command keys, derived rather than stored.

Each device's key is HMAC-SHA256(platform command secret, "civic-command-key|<device>|<version>"):
the platform can sign for any device without a table of keys to leak, a device's key changes
when its credentials are rotated (the version goes up), and one device's key says nothing
about another's. The secret is ``CIVIC_COMMAND_SECRET_FILE`` or, for the project-local
setup, ``<data dir>/command.secret``, made on first use (0600).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_BYTES = 32


def load_command_secret(path: Path, *, create: bool = True) -> bytes:
    """The platform's command secret from ``path`` (hex), made there when missing."""
    if path.exists():
        secret = bytes.fromhex(path.read_text().strip())
        if len(secret) < SECRET_BYTES:
            raise ValueError(f"{path}: the command secret needs {SECRET_BYTES} random bytes")
        return secret
    if not create:
        raise FileNotFoundError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret.hex() + "\n")
    return secret


def device_command_key(secret: bytes, device_id: str, key_version: int) -> bytes:
    label = f"civic-command-key|{device_id}|{key_version}".encode()
    return hmac.new(secret, label, hashlib.sha256).digest()


def pseudonym_key(secret: bytes) -> bytes:
    """The key homes' readings are pseudonymised with past their retention period
    (store.retention): derived from the same secret, for a different purpose."""
    return hmac.new(secret, b"civic-pseudonym-key", hashlib.sha256).digest()
