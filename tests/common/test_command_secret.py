"""The command secret is made on first use only in development or for the local services;
a production setup without one refuses to start rather than sign with a fresh secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from civic.cli import main
from common.command_keys import load_command_secret
from common.services import ServicesError
from common.settings import Settings, command_secret

EXTERNAL = "mqtt://broker.council.example:1883"


def test_production_against_an_external_broker_needs_a_configured_secret(tmp_path: Path) -> None:
    settings = Settings(env="production", mqtt_url=EXTERNAL, data_dir=tmp_path)
    with pytest.raises(ServicesError, match="CIVIC_COMMAND_SECRET_FILE"):
        command_secret(settings)
    assert not (tmp_path / "command.secret").exists()  # nothing made behind the operator's back


def test_a_configured_secret_file_must_exist_even_in_development(tmp_path: Path) -> None:
    missing = tmp_path / "vault" / "command.secret"
    settings = Settings(env="development", command_secret_file=missing, data_dir=tmp_path)
    with pytest.raises(ServicesError, match="no command secret"):
        command_secret(settings)
    assert not missing.exists()
    secret = load_command_secret(missing)  # made by the operator
    assert command_secret(settings) == secret


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "command.secret"
    short.write_text("00" * 8)
    with pytest.raises(ServicesError, match="32 random bytes"):
        command_secret(Settings(command_secret_file=short, data_dir=tmp_path))


def test_development_and_the_local_services_make_one_on_first_use(tmp_path: Path) -> None:
    dev = Settings(env="development", mqtt_url=EXTERNAL, data_dir=tmp_path / "dev")
    assert command_secret(dev) == command_secret(dev)
    assert (tmp_path / "dev" / "command.secret").exists()
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    (local_dir / "services.json").write_text(json.dumps({"mqtt_port": 18830}))
    for url in (None, "mqtt://127.0.0.1:18830"):
        local = Settings(env="production", mqtt_url=url, data_dir=local_dir)
        assert len(command_secret(local)) == 32


def test_the_alert_service_refuses_to_start_without_one(
    civic_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.setenv("CIVIC_ENV", "production")
    monkeypatch.setenv("CIVIC_DATA_DIR", str(tmp_path / "elsewhere"))  # not the local broker
    monkeypatch.delenv("CIVIC_COMMAND_SECRET_FILE", raising=False)
    _url, mqtt = civic_env
    auth = mqtt.auth("alerts")
    monkeypatch.setenv("CIVIC_MQTT_USERNAME", auth.username)
    monkeypatch.setenv("CIVIC_MQTT_PASSWORD", auth.password)
    assert main(["alerts", "run", "--once"]) == 2
    assert "no command secret" in capsys.readouterr().err
