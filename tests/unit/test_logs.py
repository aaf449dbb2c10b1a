"""Logs: whatever a developer logs by mistake comes out without the PII."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from stream_anon.logs import bind_record, configure_logging, record_context

EMAIL = "jane.whitfield@example.com"
PHONE = "+1 415 555 0132"
CARD = "4111 1111 1111 1111"
IP = "198.51.100.23"
IBAN = "DE89 3704 0044 0532 0130 00"
SSN = "078-05-1120"
RECORD = {"email": EMAIL, "comment": "call me on " + PHONE}
SECRETS = [EMAIL, PHONE, CARD, IP, IBAN, SSN, "jane.whitfield", "555 0132", "4111111111111111"]


def unconfigure() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "stream-anon"]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    yield stream
    unconfigure()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into the logs"


def test_a_careless_structlog_call_comes_out_masked(output: io.StringIO) -> None:
    log = structlog.get_logger("careless")
    log.info("user wrote in", email=EMAIL, value=RECORD, phone=PHONE, card=CARD, ip=IP)
    [event] = lines(output)
    assert_no_secret(output.getvalue())
    assert event["event"] == "user wrote in"
    assert event["email"] == "<EMAIL_ADDRESS>"
    assert event["phone"] == "<PHONE_NUMBER>"
    assert event["card"] == "<CREDIT_CARD>"
    assert event["ip"] == "<IP_ADDRESS>"
    assert event["value"] == "[removed]"  # payloads are dropped, not masked
    assert event["level"] == "info"
    assert event["logger"] == "careless"


def test_pii_inside_the_message_nested_values_and_numbers_is_masked(output: io.StringIO) -> None:
    log = structlog.get_logger()
    log.warning(
        f"refund to {IBAN} for {SSN}", context={"who": [EMAIL, {"ip": IP}]}, card_number=4111111111111111
    )
    [event] = lines(output)
    assert_no_secret(output.getvalue())
    assert event["event"] == "refund to <IBAN_CODE> for <US_SSN>"
    assert event["context"] == {"who": ["<EMAIL_ADDRESS>", {"ip": "<IP_ADDRESS>"}]}
    assert event["card_number"] == "<CREDIT_CARD>"


def test_payload_keys_and_bytes_never_reach_the_output(output: io.StringIO) -> None:
    log = structlog.get_logger()
    log.error(
        "bad record", key=b"user-42", raw=b"\xc3\x01jane", record=RECORD, payload="anything", blob=b"abc"
    )
    [event] = lines(output)
    assert event["key"] == event["raw"] == event["record"] == event["payload"] == "[removed]"
    assert event["blob"] == "<3 bytes>"
    assert "user-42" not in output.getvalue()


def test_standard_library_logging_is_routed_and_scrubbed(output: io.StringIO) -> None:
    logging.getLogger("confluent_kafka").warning("delivery failed for %s at %s", EMAIL, IP)
    [event] = lines(output)
    assert_no_secret(output.getvalue())
    assert event["event"] == "delivery failed for <EMAIL_ADDRESS> at <IP_ADDRESS>"
    assert event["level"] == "warning"
    assert event["logger"] == "confluent_kafka"


def test_exception_text_is_scrubbed(output: io.StringIO) -> None:
    log = structlog.get_logger()
    try:
        raise KeyError(f"no user {EMAIL}")
    except KeyError:
        log.exception("lookup failed")
    [event] = lines(output)
    assert_no_secret(output.getvalue())
    assert "KeyError" in str(event["exception"])
    assert "<EMAIL_ADDRESS>" in str(event["exception"])


def test_record_position_is_bound(output: io.StringIO) -> None:
    bind_record("feedback.raw", 3, 1042).info("rule failed", path="user.email")
    with record_context("feedback.raw", 1, 7):
        logging.getLogger("stream_anon.x").info("from stdlib")
        structlog.get_logger().info("from structlog")
    structlog.get_logger().info("outside")
    first, second, third, fourth = lines(output)
    assert (first["topic"], first["partition"], first["offset"]) == ("feedback.raw", 3, 1042)
    assert (second["partition"], second["offset"]) == (1, 7)
    assert (third["partition"], third["offset"]) == (1, 7)
    assert "offset" not in fourth


def test_level_filters_lines(output: io.StringIO) -> None:
    configure_logging("json", "warning", stream=output)
    structlog.get_logger().info("hidden")
    logging.getLogger("lib").info("hidden too")
    structlog.get_logger().warning("shown")
    assert [e["event"] for e in lines(output)] == ["shown"]


def test_console_format_is_readable_and_scrubbed() -> None:
    stream = io.StringIO()
    configure_logging("console", "info", stream=stream)
    try:
        structlog.get_logger().info("user wrote in", email=EMAIL)
    finally:
        unconfigure()
    text = stream.getvalue()
    assert "user wrote in" in text
    assert "email=<EMAIL_ADDRESS>" in text
    assert_no_secret(text)
    assert not text.lstrip().startswith("{")


def test_auto_picks_json_when_not_on_a_terminal(output: io.StringIO) -> None:
    configure_logging("auto", "info", stream=output)
    structlog.get_logger().info("hello")
    assert lines(output)[0]["event"] == "hello"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="log_format"):
        configure_logging("xml", "info")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_level"):
        configure_logging("json", "loud")  # type: ignore[arg-type]
