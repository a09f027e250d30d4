"""Configuration from ``CHATAPP_`` environment variables, with embedded defaults."""

from __future__ import annotations

import logging
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "CHATAPP_ENV": "development",
    "CHATAPP_DATABASE_URL": "sqlite:///instance/chatapp.db",
    # Seconds any wait on PostgreSQL may take (connect, pool, each command) before it
    # fails as unavailable (503): a server that stops answering never hangs requests.
    "CHATAPP_DATABASE_TIMEOUT": "10",
    "CHATAPP_BROKER_URL": "memory://",
    "CHATAPP_ALLOWED_ORIGINS": "",
    "CHATAPP_PRESENCE_GRACE_SECONDS": "5",
    "CHATAPP_SEND_RATE": "20/10",
    "CHATAPP_API_RATE": "600/60",
    # A websocket that sends nothing for this long is closed as half-open; the
    # browser client pings every 20 s.
    "CHATAPP_IDLE_TIMEOUT": "50",
    # permessage-deflate: off (declined) or on (no context takeover either way).
    "CHATAPP_WS_COMPRESSION": "off",
    # Open websockets per user, all workers and hosts together (SPEC §6).
    "CHATAPP_MAX_CONNECTIONS_PER_USER": "20",
    # With a Redis broker: how often each worker refreshes its presence and its open
    # websockets in Redis (both live 3x this): a killed worker's users go offline and
    # its websockets stop counting within 4x this (at most 7.5: SPEC §6's 30 s).
    "CHATAPP_REDIS_HEARTBEAT_SECONDS": "5",
    "CHATAPP_TRUSTED_PROXIES": "0",
    # Uploads (SPEC §10): the largest file, and where files live (default
    # <instance>/uploads).
    "CHATAPP_UPLOAD_MAX_MB": "25",
    "CHATAPP_UPLOAD_DIR": "",
    "CHATAPP_LOG_FORMAT": "text",
    "CHATAPP_LOG_LEVEL": "INFO",
    # Who may register (SPEC §11): open, invite or closed.
    "CHATAPP_REGISTRATION": "open",
    # The address people reach the app at (https://chat.example.com): `chatapp
    # reset-link` prints full links with it; empty: a path only.
    "CHATAPP_PUBLIC_URL": "",
}
REGISTRATION_MODES = ("open", "invite", "closed")
# Not in DEFAULTS: production must name its hosts (CHATAPP_ALLOWED_HOSTS).
DEVELOPMENT_HOSTS = "localhost,127.0.0.1,[::1]"


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the app refuses to start."""


@dataclass(frozen=True)
class Rate:
    """COUNT events per SECONDS, parsed from ``"COUNT/SECONDS"``."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str, name: str) -> Rate:
        try:
            count_text, seconds_text = text.split("/")
            rate = cls(int(count_text), float(seconds_text))
        except ValueError:
            raise ConfigError(f"{name} must look like COUNT/SECONDS, got {text!r}") from None
        if rate.count < 1 or not 0 < rate.seconds < math.inf:  # also refuses nan
            raise ConfigError(f"{name} needs a positive count and period, got {text!r}")
        return rate


def load(
    overrides: dict[str, Any] | None = None, instance_path: Path | None = None
) -> dict[str, Any]:
    """Merge defaults, the environment and explicit overrides into a checked config dict."""
    config: dict[str, Any] = dict(DEFAULTS)
    config.update({k: v for k, v in os.environ.items() if k.startswith("CHATAPP_")})
    config.update(overrides or {})
    instance = Path(config.get("CHATAPP_INSTANCE_PATH") or instance_path or "instance")
    config["CHATAPP_INSTANCE_PATH"] = str(instance)

    env = config["CHATAPP_ENV"]
    if env not in ("development", "production", "testing"):
        raise ConfigError(f"CHATAPP_ENV must be development or production, got {env!r}")
    production = env == "production"

    if not config.get("CHATAPP_SECRET_KEY"):
        if production:
            raise ConfigError("CHATAPP_SECRET_KEY is required when CHATAPP_ENV=production")
        config["CHATAPP_SECRET_KEY"] = _development_secret(instance)
    elif production and len(str(config["CHATAPP_SECRET_KEY"])) < 32:
        raise ConfigError("CHATAPP_SECRET_KEY must be at least 32 characters in production")

    config["CHATAPP_SEND_RATE"] = Rate.parse(str(config["CHATAPP_SEND_RATE"]), "CHATAPP_SEND_RATE")
    config["CHATAPP_API_RATE"] = Rate.parse(str(config["CHATAPP_API_RATE"]), "CHATAPP_API_RATE")
    try:
        max_connections = int(str(config["CHATAPP_MAX_CONNECTIONS_PER_USER"]).strip())
    except ValueError:
        max_connections = 0
    if max_connections < 1:
        raise ConfigError("CHATAPP_MAX_CONNECTIONS_PER_USER must be a whole number >= 1, "
                          f"got {config['CHATAPP_MAX_CONNECTIONS_PER_USER']!r}")
    config["CHATAPP_MAX_CONNECTIONS_PER_USER"] = max_connections
    try:
        heartbeat = float(str(config["CHATAPP_REDIS_HEARTBEAT_SECONDS"]).strip())
    except ValueError:
        heartbeat = 0
    if not 0 < heartbeat <= 7.5:  # also refuses nan
        raise ConfigError("CHATAPP_REDIS_HEARTBEAT_SECONDS must be a number of seconds above 0 "
                          f"and at most 7.5, got {config['CHATAPP_REDIS_HEARTBEAT_SECONDS']!r}")
    config["CHATAPP_REDIS_HEARTBEAT_SECONDS"] = heartbeat
    try:
        grace = float(config["CHATAPP_PRESENCE_GRACE_SECONDS"])
    except ValueError:
        raise ConfigError("CHATAPP_PRESENCE_GRACE_SECONDS must be a number of seconds") from None
    if grace < 0:
        raise ConfigError("CHATAPP_PRESENCE_GRACE_SECONDS must not be negative")
    config["CHATAPP_PRESENCE_GRACE_SECONDS"] = grace
    try:
        database_timeout = float(str(config["CHATAPP_DATABASE_TIMEOUT"]).strip())
    except ValueError:
        database_timeout = 0
    if not 0 < database_timeout < math.inf:  # also refuses nan
        raise ConfigError("CHATAPP_DATABASE_TIMEOUT must be a positive number of seconds, "
                          f"got {config['CHATAPP_DATABASE_TIMEOUT']!r}")
    config["CHATAPP_DATABASE_TIMEOUT"] = database_timeout
    try:
        config["CHATAPP_IDLE_TIMEOUT"] = float(config["CHATAPP_IDLE_TIMEOUT"])
    except ValueError:
        raise ConfigError("CHATAPP_IDLE_TIMEOUT must be a number of seconds") from None
    compression = str(config["CHATAPP_WS_COMPRESSION"]).strip().lower()
    if compression not in ("on", "off"):
        raise ConfigError(f"CHATAPP_WS_COMPRESSION must be on or off, got {compression!r}")
    config["CHATAPP_WS_COMPRESSION"] = compression == "on"
    registration = str(config["CHATAPP_REGISTRATION"]).strip().lower()
    if registration not in REGISTRATION_MODES:
        raise ConfigError("CHATAPP_REGISTRATION must be open, invite or closed, "
                          f"got {config['CHATAPP_REGISTRATION']!r}")
    config["CHATAPP_REGISTRATION"] = registration
    config["CHATAPP_PUBLIC_URL"] = str(config["CHATAPP_PUBLIC_URL"]).strip().rstrip("/")
    _uploads(config, instance)
    _front_door(config, production)
    origins = config["CHATAPP_ALLOWED_ORIGINS"]
    if isinstance(origins, str):
        origins = [o.strip().rstrip("/") for o in origins.split(",") if o.strip()]
    config["CHATAPP_ALLOWED_ORIGINS"] = list(origins)
    if config["CHATAPP_DATABASE_URL"] == DEFAULTS["CHATAPP_DATABASE_URL"]:
        # The embedded default lives beside the secret, wherever the server starts.
        config["CHATAPP_DATABASE_URL"] = f"sqlite:///{instance / 'chatapp.db'}"
    config["CHATAPP_DATABASE_URL"] = _resolve_sqlite_url(str(config["CHATAPP_DATABASE_URL"]))
    return config


def _uploads(config: dict[str, Any], instance: Path) -> None:
    try:
        max_mb = float(str(config["CHATAPP_UPLOAD_MAX_MB"]).strip())
    except ValueError:
        max_mb = 0
    if not 0 < max_mb < 1024 * 1024:  # also refuses nan
        raise ConfigError("CHATAPP_UPLOAD_MAX_MB must be a positive number of megabytes, "
                          f"got {config['CHATAPP_UPLOAD_MAX_MB']!r}")
    config["CHATAPP_UPLOAD_MAX_MB"] = max_mb
    config["CHATAPP_UPLOAD_DIR"] = str(Path(config["CHATAPP_UPLOAD_DIR"] or instance / "uploads"))


def _front_door(config: dict[str, Any], production: bool) -> None:
    """Proxies, hosts and logs: checked here so a bad value stops the start with a reason."""
    from .logs import parse_format, parse_level
    from .proxy import parse_hosts

    try:
        proxies = int(str(config["CHATAPP_TRUSTED_PROXIES"]).strip())
    except ValueError:
        proxies = -1
    if proxies < 0:
        raise ConfigError(
            "CHATAPP_TRUSTED_PROXIES must be how many proxies stand in front (0, 1, 2...), "
            f"got {config['CHATAPP_TRUSTED_PROXIES']!r}"
        )
    config["CHATAPP_TRUSTED_PROXIES"] = proxies
    hosts = config.get("CHATAPP_ALLOWED_HOSTS")
    if not hosts:
        if production:
            raise ConfigError(
                "CHATAPP_ALLOWED_HOSTS is required when CHATAPP_ENV=production: the host "
                "names this server answers to, comma-separated (e.g. chat.example.com)"
            )
        hosts = DEVELOPMENT_HOSTS
    try:
        parse_hosts(hosts)
    except ValueError as error:
        raise ConfigError(f"CHATAPP_ALLOWED_HOSTS: {error}") from None
    config["CHATAPP_ALLOWED_HOSTS"] = hosts if isinstance(hosts, str) else ",".join(hosts)
    config["CHATAPP_LOG_FORMAT"] = parse_format(config["CHATAPP_LOG_FORMAT"])
    config["CHATAPP_LOG_LEVEL"] = parse_level(config["CHATAPP_LOG_LEVEL"])


def _resolve_sqlite_url(url: str) -> str:
    """Keep ``sqlite:///relative`` relative to the working directory, as documented."""
    if url.startswith("sqlite:///") or url.startswith("postgres"):
        return url
    if url.startswith("sqlite://"):
        raise ConfigError("sqlite URLs take three slashes: sqlite:///path/to/file.db")
    raise ConfigError(
        f"CHATAPP_DATABASE_URL must be sqlite:///PATH or postgresql://..., got {url!r}"
    )


def _development_secret(instance: Path) -> str:
    """Return the development secret kept in ``instance/``, generating it once."""
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner only
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker won the race; use its secret
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    log.warning(
        "Using the development secret in %s. Set CHATAPP_SECRET_KEY and "
        "CHATAPP_ENV=production for a real deployment.",
        path,
    )
    return path.read_text().strip()
