"""Push entities to an NGSI-LD context broker (Orion-LD, Scorpio, Stellio): batch upsert.

The broker is ``CIVIC_NGSI_LD_URL`` (e.g. ``http://broker:1026``); entities go, normalized and
with their ``@context``, to ``POST {url}/ngsi-ld/v1/entityOperations/upsert`` in batches. Only
the standard library: no client to pin.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import CivicError

__all__ = ["NgsiLdSettings", "PushError", "PushResult", "push_entities"]

UPSERT_PATH = "/ngsi-ld/v1/entityOperations/upsert"
BATCH = 100
TIMEOUT_S = 30.0


class NgsiLdSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVIC_", env_file=".env", extra="ignore")

    ngsi_ld_url: str | None = None
    ngsi_ld_tenant: str | None = None
    """Sent as ``NGSILD-Tenant`` when set."""


class PushError(CivicError):
    """The broker refused the entities or could not be reached."""


@dataclass(frozen=True, slots=True)
class PushResult:
    sent: int
    batches: int


def push_entities(
    url: str, entities: Sequence[dict[str, Any]], *, tenant: str | None = None
) -> PushResult:
    """Upsert ``entities`` (normalized, each with ``@context``) into the broker at ``url``."""
    if not url.startswith(("http://", "https://")):
        raise PushError(f"NGSI-LD broker URL must be http(s): {url!r}")
    endpoint = url.rstrip("/") + UPSERT_PATH
    headers = {"Content-Type": "application/ld+json"}
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    batches = 0
    for start in range(0, len(entities), BATCH):
        body = json.dumps(entities[start : start + BATCH]).encode()
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                answer = response.read().decode(errors="replace")
                if response.status == 207:  # some entities refused: say which
                    raise PushError(f"{endpoint} refused some entities: {answer[:500]}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise PushError(f"{endpoint} answered {exc.code}: {detail}") from exc
        except OSError as exc:
            raise PushError(f"cannot reach {endpoint}: {exc}") from exc
        batches += 1
    return PushResult(sent=len(entities), batches=batches)
