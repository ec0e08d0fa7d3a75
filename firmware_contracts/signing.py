"""Signed commands: a device acts only on a command the platform signed for it.

The signature is HMAC-SHA256 with the device's own command key over a canonical form of the
command (its fields and the device id, as sorted, compact JSON), carried base64url-encoded in
``sig``. Binding the device id means a command captured on one device's topic cannot be
replayed to another; the id and ``expires_at`` let a device refuse a replay or a late copy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from firmware_contracts.messages import CommandV1, format_rfc3339


def signing_input(command: CommandV1, device_id: str) -> bytes:
    """The bytes signed: ``{"args":…,"device_id":…,"expires_at":…,"id":…,"issued_at":…,
    "name":…,"v":1}`` with sorted keys, no spaces, ASCII only, times in RFC 3339 UTC ('Z')."""
    doc = {
        "args": command.args,
        "device_id": device_id,
        "expires_at": format_rfc3339(command.expires_at),
        "id": command.id,
        "issued_at": format_rfc3339(command.issued_at),
        "name": command.name,
        "v": command.v,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def command_signature(command: CommandV1, device_id: str, key: bytes) -> str:
    digest = hmac.new(key, signing_input(command, device_id), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_command(command: CommandV1, device_id: str, key: bytes) -> CommandV1:
    """The command with its ``sig`` for ``device_id``."""
    return command.model_copy(update={"sig": command_signature(command, device_id, key)})


def signature_valid(command: CommandV1, device_id: str, key: bytes) -> bool:
    if not command.sig:
        return False
    expected = command_signature(command, device_id, key)
    return hmac.compare_digest(expected, command.sig)
