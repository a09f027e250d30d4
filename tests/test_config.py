"""Configuration from CHATAPP_ variables (SPEC §2)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from chatapp import create_app
from chatapp.config import ConfigError, Rate, load

from .conftest import test_config as make_config

STRONG_SECRET = "s" * 48


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from no CHATAPP_ variables, whatever the caller's shell has."""
    for name in list(os.environ):
        if name.startswith("CHATAPP_"):
            monkeypatch.delenv(name)


def without_secret(tmp_path: Path, **overrides: str) -> dict[str, str]:
    config = make_config(tmp_path, **overrides)
    del config["CHATAPP_SECRET_KEY"]
    return config


# production refuses weak settings


def test_production_without_secret_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="CHATAPP_SECRET_KEY"):
        create_app(without_secret(tmp_path, CHATAPP_ENV="production"))
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_production_with_empty_secret_refuses(tmp_path):
    with pytest.raises(ConfigError):
        create_app(make_config(tmp_path, CHATAPP_ENV="production", CHATAPP_SECRET_KEY=""))


def test_production_without_secret_from_environment_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATAPP_ENV", "production")
    monkeypatch.setenv("CHATAPP_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("CHATAPP_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError):
        create_app()


def test_production_refuses_a_short_secret(tmp_path):
    with pytest.raises(ConfigError, match="32"):
        create_app(make_config(tmp_path, CHATAPP_ENV="production", CHATAPP_SECRET_KEY="short"))


def test_production_with_a_strong_secret_starts(tmp_path):
    app = create_app(
        make_config(tmp_path, CHATAPP_ENV="production", CHATAPP_SECRET_KEY=STRONG_SECRET,
                    CHATAPP_ALLOWED_HOSTS="chat.example.com")
    )
    assert app.secret_key == STRONG_SECRET
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert not app.debug


def test_unknown_env_refuses(tmp_path):
    with pytest.raises(ConfigError, match="CHATAPP_ENV"):
        create_app(make_config(tmp_path, CHATAPP_ENV="prod"))


# rates


@pytest.mark.parametrize("name", ["CHATAPP_SEND_RATE", "CHATAPP_API_RATE"])
@pytest.mark.parametrize("value", ["abc", "5", "5/", "/10", "0/10", "-1/10", "5/0", "5/-1",
                                   "1/2/3", "x/y", "", "5/nan", "5/inf", "nan/1"])
def test_bad_rates_refuse(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        create_app(make_config(tmp_path, **{name: value}))


def test_rates_are_parsed(tmp_path):
    app = create_app(make_config(tmp_path, CHATAPP_SEND_RATE="40/5", CHATAPP_API_RATE="7/1.5"))
    assert app.config["CHATAPP_SEND_RATE"] == Rate(40, 5.0)
    assert app.config["CHATAPP_API_RATE"] == Rate(7, 1.5)


def test_default_rates_match_the_spec(tmp_path):
    config = load(without_secret(tmp_path) | {"CHATAPP_API_RATE": "600/60"})
    assert config["CHATAPP_SEND_RATE"] == Rate(20, 10.0)
    assert config["CHATAPP_API_RATE"] == Rate(600, 60.0)


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_bad_presence_grace_refuses(tmp_path, value):
    with pytest.raises(ConfigError, match="CHATAPP_PRESENCE_GRACE_SECONDS"):
        create_app(make_config(tmp_path, CHATAPP_PRESENCE_GRACE_SECONDS=value))


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf", "7.6", ""])
def test_bad_redis_heartbeat_refuses(tmp_path, value):
    with pytest.raises(ConfigError, match="CHATAPP_REDIS_HEARTBEAT_SECONDS"):
        create_app(make_config(tmp_path, CHATAPP_REDIS_HEARTBEAT_SECONDS=value))


def test_redis_heartbeat_sets_presence_and_websocket_slots(tmp_path):
    """Both Redis stores refresh every heartbeat and keep their keys 3x as long."""
    app = create_app(make_config(tmp_path, CHATAPP_BROKER_URL="redis://127.0.0.1:6379/0",
                                 CHATAPP_REDIS_HEARTBEAT_SECONDS="2.5"))
    svc = app.extensions["chatapp"]
    for store in (svc.limits, svc.presence.store):
        assert (store._heartbeat, store._ttl_ms) == (2.5, 7500)


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf", ""])
def test_bad_database_timeout_refuses(tmp_path, value):
    with pytest.raises(ConfigError, match="CHATAPP_DATABASE_TIMEOUT"):
        create_app(make_config(tmp_path, CHATAPP_DATABASE_TIMEOUT=value))


def test_database_timeout_is_seconds_and_reaches_postgresql(tmp_path, monkeypatch):
    assert load(make_config(tmp_path))["CHATAPP_DATABASE_TIMEOUT"] == 10.0
    monkeypatch.setenv("CHATAPP_DATABASE_TIMEOUT", " 2.5 ")
    monkeypatch.setenv("CHATAPP_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    app = create_app({"CHATAPP_ENV": "testing", "CHATAPP_SECRET_KEY": STRONG_SECRET,
                      "CHATAPP_INSTANCE_PATH": str(tmp_path / "instance")})
    assert app.config["CHATAPP_DATABASE_TIMEOUT"] == 2.5
    assert app.extensions["chatapp"].storage._timeout == 2.5  # not connected yet


@pytest.mark.parametrize("url", ["mysql://x", "sqlite://relative.db", "chatapp.db"])
def test_bad_database_url_refuses(tmp_path, url):
    with pytest.raises(ConfigError, match="CHATAPP_DATABASE_URL|sqlite"):
        create_app(make_config(tmp_path, CHATAPP_DATABASE_URL=url))


# the development secret


def test_development_secret_generated_once_and_reused(tmp_path, caplog):
    config = without_secret(tmp_path, CHATAPP_ENV="development")
    with caplog.at_level(logging.WARNING):
        first = create_app(config)
    path = tmp_path / "instance" / "secret_key"
    assert path.exists()
    assert first.secret_key == path.read_text().strip()
    assert len(first.secret_key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "development secret" in caplog.text

    second = create_app(config)
    assert second.secret_key == first.secret_key


def test_development_secrets_differ_between_instances(tmp_path):
    one = create_app(without_secret(tmp_path / "a"))
    two = create_app(without_secret(tmp_path / "b"))
    assert one.secret_key != two.secret_key


def test_cookie_signed_by_one_process_is_valid_in_the_next(tmp_path):
    """A restart keeps people logged in: the generated secret is reused."""
    from itsdangerous import URLSafeTimedSerializer

    config = without_secret(tmp_path)
    first, second = create_app(config), create_app(config)
    signer = URLSafeTimedSerializer(first.secret_key, salt="cookie-session")
    token = signer.dumps({"sid": "x"})
    assert URLSafeTimedSerializer(second.secret_key, salt="cookie-session").loads(token)


def test_explicit_secret_writes_no_file(tmp_path):
    app = create_app(make_config(tmp_path, CHATAPP_ENV="development"))
    assert app.secret_key == make_config(tmp_path)["CHATAPP_SECRET_KEY"]
    assert not (tmp_path / "instance" / "secret_key").exists()


# every variable is read from the environment


def test_every_chatapp_variable_is_read_from_the_environment(tmp_path, monkeypatch):
    values = {
        "CHATAPP_SECRET_KEY": STRONG_SECRET,
        "CHATAPP_ENV": "production",
        "CHATAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}",
        "CHATAPP_BROKER_URL": "memory://",
        "CHATAPP_ALLOWED_ORIGINS": "https://a.example, https://b.example/",
        "CHATAPP_PRESENCE_GRACE_SECONDS": "7.5",
        "CHATAPP_SEND_RATE": "30/15",
        "CHATAPP_API_RATE": "9/3",
        "CHATAPP_INSTANCE_PATH": str(tmp_path / "inst"),
        "CHATAPP_ALLOWED_HOSTS": "chat.example.com, *.example.org",
        "CHATAPP_TRUSTED_PROXIES": "2",
        "CHATAPP_LOG_FORMAT": "json",
        "CHATAPP_LOG_LEVEL": "warning",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    app = create_app()
    config = app.config
    assert app.secret_key == STRONG_SECRET
    assert config["CHATAPP_ENV"] == "production"
    assert config["CHATAPP_DATABASE_URL"] == values["CHATAPP_DATABASE_URL"]
    assert config["CHATAPP_BROKER_URL"] == "memory://"
    assert config["CHATAPP_ALLOWED_ORIGINS"] == ["https://a.example", "https://b.example"]
    assert config["CHATAPP_PRESENCE_GRACE_SECONDS"] == 7.5
    assert config["CHATAPP_SEND_RATE"] == Rate(30, 15.0)
    assert config["CHATAPP_API_RATE"] == Rate(9, 3.0)
    assert config["CHATAPP_INSTANCE_PATH"] == values["CHATAPP_INSTANCE_PATH"]
    assert config["CHATAPP_ALLOWED_HOSTS"] == values["CHATAPP_ALLOWED_HOSTS"]
    assert config["CHATAPP_TRUSTED_PROXIES"] == 2
    assert (config["CHATAPP_LOG_FORMAT"], config["CHATAPP_LOG_LEVEL"]) == ("json", "WARNING")


def test_broker_url_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATAPP_BROKER_URL", "redis://cache.internal:6380/2")
    config = load(make_config(tmp_path) | {"CHATAPP_BROKER_URL": os.environ["CHATAPP_BROKER_URL"]})
    assert config["CHATAPP_BROKER_URL"] == "redis://cache.internal:6380/2"
    del config
    # Without the explicit override the environment decides.
    overrides = make_config(tmp_path)
    del overrides["CHATAPP_BROKER_URL"]
    assert load(overrides)["CHATAPP_BROKER_URL"] == "redis://cache.internal:6380/2"


def test_explicit_config_beats_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATAPP_API_RATE", "1/1")
    app = create_app(make_config(tmp_path, CHATAPP_API_RATE="5/1"))
    assert app.config["CHATAPP_API_RATE"] == Rate(5, 1.0)


def test_non_chatapp_variables_are_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-elsewhere")
    monkeypatch.setenv("OTHER_CHATAPP_ENV", "production")
    app = create_app(make_config(tmp_path))
    assert app.secret_key != "from-elsewhere"
    assert "OTHER_CHATAPP_ENV" not in app.config


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load(None, tmp_path / "instance")
    assert config["CHATAPP_ENV"] == "development"
    # The embedded database lives beside the secret, in the instance folder.
    assert config["CHATAPP_DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'chatapp.db'}"
    assert config["CHATAPP_BROKER_URL"] == "memory://"
    assert config["CHATAPP_ALLOWED_ORIGINS"] == []
    assert config["CHATAPP_PRESENCE_GRACE_SECONDS"] == 5.0
    assert config["CHATAPP_REDIS_HEARTBEAT_SECONDS"] == 5.0
    assert (tmp_path / "instance" / "secret_key").exists()


async def test_app_serves_with_env_only_config(tmp_path, monkeypatch):
    """``create_app()`` with nothing but the environment really starts."""
    monkeypatch.setenv("CHATAPP_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("CHATAPP_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app()
    async with app.test_app():
        response = await app.test_client().get("/healthz")
        assert response.status_code == 200
    assert (tmp_path / "env.db").exists()
    assert (tmp_path / "instance" / "secret_key").exists()
