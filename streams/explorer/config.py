"""The explorer's own settings, read like the worker's (``K8SEV_*``, every problem ``VAR=value: why``).

Kept apart from ``streams.settings`` until the grouped Settings absorb them as ``settings.explorer``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PREFIX = "K8SEV_"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

# (variable, default, meaning): the rows the lead folds into docs/configuration.md.
DOCUMENTATION = (
    ("EXPLORER", "true", "serve the explorer page at /ui/ and its JSON API at /ui/api/"),
    ("EXPLORER_TOKEN", "", "bearer token the page and its API demand; empty: no token"),
    ("EXPLORER_TOKEN_FILE", "", "file holding the token (a mounted Secret)"),
    ("EXPLORER_USERNAME", "", "basic-auth user the page and its API demand (with the password)"),
    ("EXPLORER_PASSWORD", "", "its password"),
    ("EXPLORER_PASSWORD_FILE", "", "file holding the password"),
    ("EXPLORER_TIMEOUT", "10s", "longest wait for the search engine per request: a page should answer or say why"),
)


@dataclass(frozen=True)
class ExplorerSettings:
    """Whether the page is served, who may read it, and how long a search may take."""

    enabled: bool = True
    token: str = ""
    username: str = ""
    password: str = ""
    timeout: float = 10.0

    @property
    def protected(self) -> bool:
        return bool(self.token or self.username)

    def describe(self) -> dict[str, str]:
        """For the start-up log: secrets masked."""
        return {
            "explorer": str(self.enabled),
            "explorer_token": "***" if self.token else "",
            "explorer_username": self.username,
            "explorer_password": "***" if self.password else "",
            "explorer_timeout": str(self.timeout),
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> tuple[ExplorerSettings, list[str]]:
        """The settings and every problem found; with problems, the first value is the defaults."""
        problems: list[str] = []

        def get(name: str) -> str:
            return environ.get(PREFIX + name, "")

        enabled = True
        text = get("EXPLORER").strip().lower()
        if text in _FALSE:
            enabled = False
        elif text and text not in _TRUE:
            problems.append(f"{PREFIX}EXPLORER={get('EXPLORER')!r}: not a boolean (true/false)")

        token = _secret(environ, "EXPLORER_TOKEN", problems)
        password = _secret(environ, "EXPLORER_PASSWORD", problems)
        username = get("EXPLORER_USERNAME").strip()
        if bool(username) != bool(password):
            problems.append(f"{PREFIX}EXPLORER_USERNAME and {PREFIX}EXPLORER_PASSWORD go together")
        if ":" in username:
            problems.append(f"{PREFIX}EXPLORER_USERNAME={username!r}: basic auth forbids ':' in a user name")

        timeout = 10.0
        raw = get("EXPLORER_TIMEOUT")
        if raw:
            match = _DURATION.match(raw)
            value = float(match.group(1)) * _UNITS[match.group(2)] if match else 0.0
            if not match or not 0 < value <= 300:
                problems.append(f"{PREFIX}EXPLORER_TIMEOUT={raw!r}: a duration from 1ms to 5m (examples: 500ms, 10s)")
            else:
                timeout = value
        if problems:
            return cls(), problems
        return cls(enabled=enabled, token=token, username=username, password=password, timeout=timeout), []


def _secret(environ: Mapping[str, str], name: str, problems: list[str]) -> str:
    value = environ.get(PREFIX + name, "")
    file = environ.get(PREFIX + name + "_FILE", "")
    if not file:
        return value.strip()
    if value:
        problems.append(f"{PREFIX}{name} and {PREFIX}{name}_FILE are both set: choose one")
        return ""
    try:
        text = Path(file).expanduser().read_text().strip()
    except OSError as exc:
        problems.append(f"{PREFIX}{name}_FILE={file!r}: unreadable ({exc.strerror})")
        return ""
    if not text:
        problems.append(f"{PREFIX}{name}_FILE={file!r}: the file is empty")
    return text
