"""Settings: defaults, environment overrides, and one clear line for a wrong value."""

from __future__ import annotations

import pytest
from support.settings import one_line_error

from producer.errors import ConfigurationError
from producer.settings import ProducerSettings, load, redacted_url
from workers.settings import Settings


def test_the_defaults_are_the_documented_ones() -> None:
    settings = load(Settings)
    assert settings.amqp_url == "amqp://guest:guest@localhost:5672/%2F"
    assert settings.database_url == "sqlite:///hookline.db"
    assert settings.exchange == "hookline.events"
    assert settings.queue_prefix == "hookline"


def test_settings_come_from_hookline_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_EXCHANGE", "shop.events")
    monkeypatch.setenv("HOOKLINE_HTTP_TIMEOUT", "2.5")
    settings = load(Settings)
    assert (settings.exchange, settings.http_timeout) == ("shop.events", 2.5)


def test_a_wrong_amqp_url_is_one_line_naming_the_variable_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = one_line_error(
        monkeypatch, "HOOKLINE_AMQP_URL", "http://user:hunter2@example/", settings=ProducerSettings
    )
    assert "HOOKLINE_AMQP_URL" in message
    assert "hunter2" not in message


def test_every_wrong_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_DATABASE_URL", "mysql://db/x")
    monkeypatch.setenv("HOOKLINE_HTTP_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError) as caught:
        load(Settings)
    assert "HOOKLINE_DATABASE_URL" in str(caught.value)
    assert "HOOKLINE_HTTP_TIMEOUT" in str(caught.value)


def test_redacted_urls_hide_the_password_only() -> None:
    assert redacted_url("amqp://app:s3cret@rabbit:5672/prod") == "amqp://app:***@rabbit:5672/prod"
    assert redacted_url("amqp://rabbit/") == "amqp://rabbit/"


def test_a_misspelt_variable_is_an_error_naming_it_and_the_setting_it_resembles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = one_line_error(monkeypatch, "HOOKLINE_RETRY_SHEDULE", "5s,1m")
    assert message == "unknown setting HOOKLINE_RETRY_SHEDULE: did you mean HOOKLINE_RETRY_SCHEDULE?"


def test_a_publisher_is_told_of_a_misspelt_broker_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = one_line_error(monkeypatch, "HOOKLINE_AMQP_ULR", "amqp://h", settings=ProducerSettings)
    assert "did you mean HOOKLINE_AMQP_URL?" in message


def test_a_variable_that_resembles_no_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    monkeypatch.setenv("HOOKLINE_BENCH_DIR", "bench-run")
    assert load(Settings).amqp_url == Settings().amqp_url


def test_an_event_limit_whose_deliveries_could_outgrow_the_brokers_messages_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 64 MiB of emoji is 192 MiB once a delivery escapes it as JSON: over RabbitMQ's 128 MiB.
    monkeypatch.setenv("HOOKLINE_MAX_EVENT_BYTES", str(64 * 1024 * 1024))
    message = one_line_error(monkeypatch, "HOOKLINE_BROKER_MAX_MESSAGE_BYTES", str(128 * 1024 * 1024))
    assert message.startswith(
        "invalid setting HOOKLINE_BROKER_MAX_MESSAGE_BYTES: the broker's limit must hold"
    )
    assert "HOOKLINE_MAX_EVENT_BYTES (67108864) can encode to 201326592 bytes" in message


def test_a_broker_limit_raised_to_match_admits_the_larger_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_MAX_EVENT_BYTES", str(64 * 1024 * 1024))
    monkeypatch.setenv("HOOKLINE_BROKER_MAX_MESSAGE_BYTES", str(256 * 1024 * 1024))
    assert load(Settings).max_event_bytes == 64 * 1024 * 1024
