"""No secret setting reaches repr(Settings), the start-up settings line, or a settings error."""

from __future__ import annotations

from dataclasses import fields

import pytest

from streams.config.settings import GROUPS, PREFIX, Settings, SettingsError, _settings_fields

MARKER = "s3cr3t-MARKER-7f1c"
SECRETS = [PREFIX + f.metadata["env"] for _, f in _settings_fields() if f.metadata["secret"]]


def test_the_secret_settings_are_the_ones_expected() -> None:
    # A new secret setting must be marked secret=True; this list is what this test guards.
    assert sorted(SECRETS) == sorted(
        PREFIX + name for name in ("KAFKA_PASSWORD", "ES_PASSWORD", "ES_API_KEY", "EXPLORER_TOKEN", "EXPLORER_PASSWORD")
    )


def test_every_secret_stays_out_of_repr_and_the_settings_line() -> None:
    env = dict.fromkeys(SECRETS, MARKER) | {
        # What makes each secret acceptable: a SASL user and protocol, an ES user (its password's).
        "K8SEV_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "K8SEV_KAFKA_USERNAME": "u",
        "K8SEV_EXPLORER_USERNAME": "ops",
    }
    env.pop("K8SEV_ES_API_KEY")  # exclusive with the user: checked below on its own
    settings = Settings.from_env(env | {"K8SEV_ES_USERNAME": "reader"})
    assert settings.kafka.password == settings.search.password == settings.explorer.token == MARKER
    assert MARKER not in repr(settings) and MARKER not in str(settings)
    for group in GROUPS:
        assert MARKER not in repr(getattr(settings, group))
    assert MARKER not in repr(settings.describe())
    with_key = Settings.from_env({"K8SEV_ES_API_KEY": MARKER})
    assert with_key.search.api_key == MARKER and MARKER not in repr(with_key)
    assert {f.name for f in fields(type(settings.search)) if not f.repr} == {"password", "api_key"}


@pytest.mark.parametrize("variable", SECRETS)
def test_a_secret_is_never_quoted_in_an_error(variable: str) -> None:
    # Whatever else is wrong, the errors name the variables, not the secret.
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: MARKER, "K8SEV_ES_USERNAME": "", "K8SEV_TOPIC_REPLICAS": "x"})
    assert MARKER not in str(caught.value)
