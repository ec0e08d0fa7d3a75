"""``civic export fiware`` from a real database: files that validate, and the upsert into a
local stand-in for an NGSI-LD broker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from civic.cli import main
from tests.api.conftest import build_estate

from .schemas import errors

UPSERT = "/ngsi-ld/v1/entityOperations/upsert"


class StubBroker:
    """Speaks ``POST /ngsi-ld/v1/entityOperations/upsert`` as a context broker does: 201 with
    the ids created, 204 when all existed; ``answer`` overrides the status."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.entities: dict[str, dict[str, Any]] = {}
        self.answer: int | None = None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stub.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": json.loads(body),
                    }
                )
                if self.path != UPSERT:
                    self._reply(404, b'{"type": "not found"}')
                    return
                if stub.answer is not None:
                    self._reply(stub.answer, b'{"title": "BadRequestData"}')
                    return
                batch = stub.requests[-1]["body"]
                created = [e["id"] for e in batch if e["id"] not in stub.entities]
                stub.entities.update({e["id"]: e for e in batch})
                self._reply(201, json.dumps(created).encode()) if created else self._reply(204)

            def _reply(self, code: int, body: bytes = b"") -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    stub = StubBroker()
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


@pytest.fixture
def estate(civic_env, monkeypatch: pytest.MonkeyPatch) -> str:
    url, _ = civic_env
    build_estate(url)
    return url


def test_exported_files_validate(estate: str, tmp_path: Path) -> None:
    out = tmp_path / "entities.json"
    for entity_type in ("WasteContainer", "WasteContainerModel", "IndoorEnvironmentObserved"):
        for form in ("keyvalues", "normalized"):
            argv = ["export", "fiware", "--type", entity_type, "--format", form, "-o", str(out)]
            assert main(argv) == 0
            entities = json.loads(out.read_text())
            assert len(entities) == {"WasteContainerModel": 1, "WasteContainer": 2}.get(
                entity_type, 3
            )
            for entity in entities:
                assert errors(entity, entity_type, normalized=form == "normalized") == [], entity
    assert not any("uprn" in e for e in entities)  # homes: only with --personal
    assert main([*argv, "--personal"]) == 0
    assert all("uprn" in e for e in json.loads(out.read_text()))


def test_push_upserts_normalized_entities_into_the_broker(
    estate: str, broker: StubBroker, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CIVIC_NGSI_LD_URL", broker.url)
    monkeypatch.setenv("CIVIC_NGSI_LD_TENANT", "leicester")
    for _ in range(2):  # the second push updates what the first created
        assert main(["export", "fiware", "--type", "WasteContainer", "--push"]) == 0
    assert "pushed 2 WasteContainer entities" in capsys.readouterr().out
    assert [r["path"] for r in broker.requests] == [UPSERT, UPSERT]
    headers = broker.requests[0]["headers"]
    assert headers["content-type"] == "application/ld+json"
    assert headers["ngsild-tenant"] == "leicester"
    assert len(broker.entities) == 2
    for entity in broker.entities.values():
        assert errors(entity, "WasteContainer", normalized=True) == [], entity


def test_a_refused_or_missing_broker_is_reported(
    estate: str, broker: StubBroker, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    argv = ["export", "fiware", "--type", "WasteContainerModel", "--push"]
    monkeypatch.delenv("CIVIC_NGSI_LD_URL", raising=False)
    assert main(argv) == 2
    assert "CIVIC_NGSI_LD_URL" in capsys.readouterr().err
    monkeypatch.setenv("CIVIC_NGSI_LD_URL", broker.url)
    broker.answer = 400
    assert main(argv) == 2
    assert "answered 400" in capsys.readouterr().err
    broker.answer = 207
    assert main(argv) == 2
    assert "refused some entities" in capsys.readouterr().err
