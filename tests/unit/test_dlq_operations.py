"""Dead-letter operations without a broker: the summary's counts, what a replay decides for each
record, and the commands' times and offsets."""

from __future__ import annotations

import json

import click
import pytest
from dlqtools import RAW_KEY, RAW_VALUE, dead_letter, read_back, sealing_keys

from stream_anon.cli.dlq import _bound, parse_time
from stream_anon.dlq.letter import Letter, Place, Unreadable
from stream_anon.dlq.replay import STOP, Bound, Pass, Planner, Selection, Write
from stream_anon.dlq.seal import DeadLetterSeal
from stream_anon.dlq.summary import Summary
from stream_anon.keys import Keys
from stream_anon.records import SEAL_VERSION_HEADER


def test_summary_counts_by_reason_schema_source_and_seal_and_lists_problems() -> None:
    keys = sealing_keys()
    seal = DeadLetterSeal(keys)
    summary = Summary(max_replays=2, keys=keys)
    for offset in range(3):
        summary.add(read_back(*seal.seal(dead_letter(offset=offset)), place=Place(0, offset, 1000 + offset)))
    plain = dead_letter(offset=9, replays=2)
    summary.add(read_back(plain.source.key, plain.source.value, plain.headers(), Place(1, 0, 5000)))
    foreign = [(n, b"7" if n == SEAL_VERSION_HEADER else v) for n, v in seal.seal(dead_letter())[2]]
    summary.add(read_back(b"x", b"y", foreign, Place(0, 3, 2000)))
    summary.add(Unreadable(Place(1, 1, 6000), "no stream-anon dead-letter headers"))
    result = summary.to_dict()
    assert result["dead_letters"] == {
        "count": 5,
        "first": "1970-01-01T00:00:01.000Z",
        "last": "1970-01-01T00:00:05.000Z",
    }
    assert result["by_reason"]["unannotated_field"]["count"] == 5
    assert result["by_schema"] == {"fp:ab12": 5}
    assert result["by_source"] == {"raw[2]": 5}
    assert result["sealed"] == {"dlq v1": 3, "dlq v7": 1} and result["not_sealed"] == 1
    assert result["held_back"] == {"unannotated_field": 1}
    assert result["problems"] == [
        "partition 0 offset 3: sealed under key 'dlq' version 7, which the keys file does not hold: "
        "it cannot be replayed",
        "partition 1 offset 1: no stream-anon dead-letter headers",
    ]
    assert "Jane" not in json.dumps(result)


def planner(selection: Selection | None = None, max_replays: int = 3) -> Planner:
    return Planner(selection or Selection(), DeadLetterSeal(sealing_keys()), max_replays, {"raw": 3})


def letter_at(place: Place, replays: int = 0, topic_partition: int = 2, topic: str = "raw") -> Letter:
    dl = dead_letter(replays=replays)
    headers = [
        (n, str(topic_partition).encode() if n == "stream-anon.source.partition" else v)
        for n, v in dl.headers()
    ]
    headers = [(n, topic.encode() if n == "stream-anon.source.topic" else v) for n, v in headers]
    found = read_back(dl.source.key, dl.source.value, headers, place)
    assert isinstance(found, Letter)
    return found


def test_a_replay_puts_back_the_original_key_value_partition_and_timestamp_with_the_count() -> None:
    decided = planner().plan(letter_at(Place(0, 1, 10), replays=1))
    assert decided == Write("raw", 2, RAW_KEY, RAW_VALUE, 1_700_000_000_000, 2)
    assert planner().plan(letter_at(Place(0, 1, 10), topic_partition=5)) == Write(
        "raw", None, RAW_KEY, RAW_VALUE, 1_700_000_000_000, 1
    )


def test_a_replay_selects_by_reason_schema_and_bounds_and_holds_back_at_the_cap() -> None:
    at = Place(1, 50, 10_000)
    assert planner(Selection(frozenset({"rule_failed"}))).plan(letter_at(at)) == Pass("not_selected")
    assert isinstance(planner(Selection(frozenset({"unannotated_field"}))).plan(letter_at(at)), Write)
    assert planner(Selection(schema="id:3")).plan(letter_at(at)) == Pass("not_selected")
    assert isinstance(planner(Selection(schema="fp:ab12")).plan(letter_at(at)), Write)
    assert planner(Selection(since=Bound(time_ms=10_001))).plan(letter_at(at)) == Pass("not_selected")
    assert planner(Selection(since=Bound(offset=51))).plan(letter_at(at)) == Pass("not_selected")
    assert isinstance(planner(Selection(since=Bound(offset=51, partition=0))).plan(letter_at(at)), Write)
    assert isinstance(planner(Selection(until=Bound(offset=50))).plan(letter_at(at)), Write)
    assert planner(Selection(until=Bound(offset=49, partition=1))).plan(letter_at(at)) == STOP
    assert planner(Selection(until=Bound(time_ms=9_999))).plan(letter_at(at)) == STOP
    held = planner(max_replays=2).plan(letter_at(at, replays=2))
    assert isinstance(held, Pass) and held.kind == "held_back"
    elsewhere = planner().plan(letter_at(at, topic="feedback.sanitized"))
    assert isinstance(elsewhere, Pass) and elsewhere.kind == "skipped" and "input topics" in elsewhere.message


def test_a_replay_skips_what_it_cannot_read_or_open_with_a_message() -> None:
    unreadable = planner().plan(Unreadable(Place(0, 0, 0), "no stream-anon dead-letter headers"))
    assert unreadable == Pass("skipped", "no stream-anon dead-letter headers")
    other_keys = DeadLetterSeal(Keys.generate(["dlq"]).sealing_dead_letters_with("dlq"))
    letter = read_back(*other_keys.seal(dead_letter()))
    assert isinstance(letter, Letter)
    decided = planner().plan(letter)
    assert isinstance(decided, Pass) and decided.kind == "skipped" and "not the one" in decided.message


def test_times_and_offsets_on_the_command_line() -> None:
    assert parse_time("2026-01-05T10:00:00Z", "--since") == 1_767_607_200_000
    assert parse_time("2026-01-05T10:00:00", "--since") == 1_767_607_200_000
    assert parse_time("2h", "--since") < parse_time("1h", "--since")
    with pytest.raises(click.BadParameter, match="ISO 8601"):
        parse_time("yesterday", "--since")
    assert _bound("@120", "--since") == Bound(offset=120)
    assert _bound("2@7", "--until") == Bound(offset=7, partition=2)
    assert _bound(None, "--until") is None
