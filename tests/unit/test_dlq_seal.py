"""Sealing dead letters at rest and reading their headers back, without a broker: what a sealed dead
letter holds, what opens it, what a destroyed key version leaves, the keys file's dlq_encryption_key, and
the replay count a replayed record carries into its next dead letter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from dlqtools import RAW_KEY, RAW_VALUE, dead_letter, read_back, sealing_keys

from stream_anon.cli import main
from stream_anon.dlq.letter import Letter, Place, Unreadable, parse_headers
from stream_anon.dlq.seal import DeadLetterSeal, SealError
from stream_anon.kafka.source import replay_count
from stream_anon.keys import Keys, KeysError, KeysFileError
from stream_anon.records import REPLAY_COUNT_HEADER, SEAL_VERSION_HEADER


def test_a_sealed_dead_letter_holds_none_of_the_raw_bytes_and_opens_to_them() -> None:
    seal = DeadLetterSeal(sealing_keys())
    key, value, headers = seal.seal(dead_letter())
    assert key is not None and value is not None
    for raw in (RAW_KEY, RAW_VALUE, b"Jane", b"jane.doe", b"7946"):
        assert raw not in key and raw not in value
    names = dict(headers)
    assert names["stream-anon.seal.key"] == b"dlq" and names[SEAL_VERSION_HEADER] == b"1"
    assert names["stream-anon.reason"] == b"unannotated_field"  # headers stay readable
    letter = read_back(key, value, headers)
    assert isinstance(letter, Letter) and letter.seal is not None
    assert seal.open(letter) == (RAW_KEY, RAW_VALUE)


def test_sealing_is_deterministic_per_source_record_so_a_failed_write_can_be_matched() -> None:
    seal = DeadLetterSeal(sealing_keys())
    assert seal.seal(dead_letter())[1] == seal.seal(dead_letter())[1]
    assert seal.seal(dead_letter())[1] != seal.seal(dead_letter(offset=8))[1]


@pytest.mark.parametrize(("key", "value"), [(None, None), (RAW_KEY, b""), (None, RAW_VALUE)])
def test_tombstones_stay_null_and_empty_values_stay_empty(key: bytes | None, value: bytes | None) -> None:
    seal = DeadLetterSeal(sealing_keys())
    sealed_key, sealed_value, headers = seal.seal(dead_letter(value=value, key=key))
    assert (sealed_key is None) == (key is None) and (sealed_value is None) == (value is None)
    letter = read_back(sealed_key, sealed_value, headers)
    assert isinstance(letter, Letter)
    assert seal.open(letter) == (key, value)


def test_sealed_bytes_moved_onto_another_dead_letter_do_not_open() -> None:
    seal = DeadLetterSeal(sealing_keys())
    key, value, headers = seal.seal(dead_letter(offset=7))
    moved = [(n, b"8" if n == "stream-anon.source.offset" else v) for n, v in headers]
    letter = read_back(key, value, moved)
    assert isinstance(letter, Letter)
    with pytest.raises(SealError, match="bytes or headers were altered"):
        seal.open(letter)


def test_a_destroyed_key_version_leaves_its_dead_letters_unreadable() -> None:
    keys = sealing_keys()
    key, value, headers = DeadLetterSeal(keys).seal(dead_letter())
    rotated = keys.rotate("dlq")
    letter = read_back(key, value, headers)
    assert isinstance(letter, Letter)
    assert DeadLetterSeal(rotated).open(letter) == (RAW_KEY, RAW_VALUE)  # old versions still open
    destroyed = rotated.without_version("dlq", 1)
    with pytest.raises(SealError, match="version 1, which the keys file does not hold"):
        DeadLetterSeal(destroyed).open(letter)
    with pytest.raises(KeysError, match="active"):
        rotated.without_version("dlq", 2)


def test_the_keys_file_names_its_dead_letter_key_and_keeps_it_through_rotation(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    sealing_keys().rotate("default").save(path)
    loaded = Keys.load(path)
    assert loaded.dlq_encryption_key == "dlq" and loaded.names == ["default", "dlq"]
    assert json.loads(path.read_text())["dlq_encryption_key"] == "dlq"
    document = loaded.to_dict()
    document["dlq_encryption_key"] = "missing"
    with pytest.raises(KeysFileError, match="'missing', which is not a key"):
        Keys.from_dict(document)
    assert Keys.generate().dlq_encryption_key is None
    with pytest.raises(SealError, match="names no dlq_encryption_key"):
        DeadLetterSeal(Keys.generate()).seal(dead_letter())


def test_keys_commands_create_a_dead_letter_key_and_destroy_a_version(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    runner = CliRunner()
    made = runner.invoke(main, ["keys", "generate", "--output", str(path), "--dlq-key", "dlq"])
    assert made.exit_code == 0, made.output
    assert Keys.load(path).dlq_encryption_key == "dlq"
    assert runner.invoke(main, ["keys", "rotate", str(path), "--key", "dlq"]).exit_code == 0
    refused = runner.invoke(main, ["keys", "destroy", str(path), "--key", "dlq", "--version", "2", "--yes"])
    assert refused.exit_code != 0 and "rotate the key first" in refused.output
    gone = runner.invoke(main, ["keys", "destroy", str(path), "--key", "dlq", "--version", "1", "--yes"])
    assert gone.exit_code == 0, gone.output
    assert Keys.load(path).versions("dlq") == [2]


def test_records_that_are_not_readable_dead_letters_say_why() -> None:
    place = Place(1, 5, 0)
    found = parse_headers(place, {}, b"k", b"v")
    assert isinstance(found, Unreadable) and "no stream-anon dead-letter headers" in found.problem
    _, _, headers = DeadLetterSeal(sealing_keys()).seal(dead_letter())
    named = {n: v.decode() for n, v in headers}
    newer = parse_headers(place, {**named, "stream-anon.version": "99.0.0"}, b"k", b"v")
    assert isinstance(newer, Unreadable) and "newer than this" in newer.problem
    bad = parse_headers(place, {**named, "stream-anon.source.offset": "x"}, b"k", b"v")
    assert isinstance(bad, Unreadable) and "not a number" in bad.problem
    half_sealed = {k: v for k, v in named.items() if k != SEAL_VERSION_HEADER}
    broken = parse_headers(place, half_sealed, b"k", b"v")
    assert isinstance(broken, Unreadable) and "seal" in broken.problem


def test_a_replayed_record_counts_its_replays_into_its_next_dead_letter() -> None:
    assert replay_count([("other", b"1"), (REPLAY_COUNT_HEADER, b"2")]) == 2
    assert replay_count([(REPLAY_COUNT_HEADER, b"-1")]) == 0
    headers = dict(dead_letter(replays=2).headers())
    assert headers[REPLAY_COUNT_HEADER] == b"2"
    assert REPLAY_COUNT_HEADER not in dict(dead_letter().headers())
