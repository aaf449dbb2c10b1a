"""Attacks on the ``noise`` op: each passes only when the attacker's advantage is within the epsilon bound.

An epsilon-DP mechanism lets no test tell two neighbouring inputs apart from one output with a success
rate above e^eps / (1 + e^eps) when both are equally likely. Each attack below guesses a secret bit
from outputs, over N trials with seeded secrets, and the check allows the bound plus Z binomial
standard errors (0.5 / sqrt(N) at most): a correct mechanism fails a check with probability below
3e-7 (one-sided normal tail at Z = 5). On the code before issue 21 every attack here succeeded 100 %.
"""

from __future__ import annotations

import json
import math
import os
import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stream_anon.cli import main
from stream_anon.keys import Keys
from stream_anon.rules import SchemaRulesError, compile_plan
from stream_anon.rules.plan import RuleFailure

N = 4000
Z = 5.0
KEYS = Keys.generate()


def cap(epsilon: float) -> float:
    """The most an epsilon-DP mechanism lets a guess succeed, two equally likely inputs."""
    return math.exp(epsilon) / (1 + math.exp(epsilon))


def allowance(n: int) -> float:
    return Z * 0.5 / math.sqrt(n)


def success(guesses: list[bool], secrets: list[bool]) -> float:
    return sum(g == s for g, s in zip(guesses, secrets, strict=True)) / len(secrets)


def schema(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "R", "namespace": "t", "fields": list(fields)}


def noised(name: str, avro: str, epsilon: float, bounds: list[float]) -> dict[str, Any]:
    return {"name": name, "type": avro, "anon": {"op": "noise", "epsilon": epsilon, "bounds": bounds}}


def on_grid(value: float, origin: float, step: Fraction) -> bool:
    """Whether value - origin is a whole number of steps (exact rational arithmetic)."""
    return ((Fraction(value) - Fraction(origin)) / step).denominator == 1


def anonymize_file(tmp_path: Path, fields: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[Any]:
    """``stream-anon anonymize`` on JSON Lines: the file mode, end to end."""
    (tmp_path / "r.avsc").write_text(json.dumps(schema(*fields)))
    KEYS.save(tmp_path / "keys.json")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = CliRunner().invoke(
        main,
        [
            *("anonymize", "--schema", str(tmp_path / "r.avsc"), "--keys", str(tmp_path / "keys.json")),
            *("--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")),
        ],
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]


def test_one_output_does_not_tell_37_5_from_37_6_in_the_file_mode(tmp_path: Path) -> None:
    """The issue's attack: a float output kept its input's residue modulo 2^-20 (4000 of 4000 told apart).

    37.5 and 37.6 are 0.1 apart within bounds 120 wide: the mechanism's loss between them is at most
    epsilon * 0.1 / 120 (plus one grid step), so the cap is about 0.5002, far below the 73 % of eps = 1.
    """
    rng = random.Random(21)
    secrets = [rng.random() < 0.5 for _ in range(N)]
    records = [{"minutes": 37.6 if s else 37.5} for s in secrets]
    field = noised("minutes", "double", 1.0, [0, 120])
    out = [r["minutes"] for r in anonymize_file(tmp_path, [field], records)]
    pair_epsilon = 1.0 * (0.1 + 2**-20) / 120
    bound = cap(pair_epsilon) + allowance(N)
    # The residue attack, on every grid a sampler might use: guess 37.5 when the output sits on 37.5's grid.
    for bits in (20, 24, 30, 40, 52):
        step = Fraction(1, 2**bits)
        guesses = [not on_grid(y, 37.5, step) for y in out]
        rate = success(guesses, secrets)
        assert rate <= bound, f"residue modulo 2^-{bits} tells the input in {rate:.1%} of tries"
    # The best test on the value itself: above or below the midpoint.
    rate = success([y > 37.55 for y in out], secrets)
    assert rate <= bound, f"the midpoint test succeeds {rate:.1%}"
    # And no two-decimal candidate is ruled out by an output's low bits: all outputs share one grid.
    assert all(on_grid(y, 0.0, Fraction(1, 2**23)) for y in out)


def test_a_long_near_1_7e12_is_not_revealed_and_keeps_its_noise_scale(tmp_path: Path) -> None:
    """Integer noise saturated at 32 bits: outputs for the two bounds did not overlap (value revealed)."""
    low, high, eps = 1_600_000_000_000, 1_800_000_000_000, 1.0
    rng = random.Random(22)
    secrets = [rng.random() < 0.5 for _ in range(N)]
    records = [{"at": high if s else low} for s in secrets]
    out = [r["at"] for r in anonymize_file(tmp_path, [noised("at", "long", eps, [low, high])], records)]
    assert all(isinstance(y, int) for y in out)
    rate = success([y > (low + high) / 2 for y in out], secrets)
    # The optimal test between the two bounds: the full sensitivity, so the cap of eps itself.
    assert rate <= cap(eps) + allowance(N), f"the midpoint test succeeds {rate:.1%}"
    scale = (high - low) / eps
    deviation = sum(abs(y - (high if s else low)) for y, s in zip(out, secrets, strict=True)) / N
    # |Laplace(b)| has mean b and standard deviation b: Z standard errors.
    assert abs(deviation / scale - 1) < Z / math.sqrt(N), f"mean |noise| {deviation:.3g}, scale {scale:.3g}"


def test_integer_noise_has_its_scale_for_a_long_with_bounds_0_to_1e11() -> None:
    plan = compile_plan(schema(noised("n", "long", 1.0, [0, 100_000_000_000])), KEYS)
    out = [r["n"] for r in plan.apply_batch([{"n": 50_000_000_000}] * N)]  # type: ignore[index]
    deviation = sum(abs(y - 50_000_000_000) for y in out) / N
    assert abs(deviation / 1e11 - 1) < Z / math.sqrt(N), f"mean |noise| {deviation:.3g}, documented 1e11"
    assert sum(abs(y - 50_000_000_000) >= 2**31 - 1 for y in out) > N / 2, "noise past 32 bits is not cut"


@pytest.mark.parametrize(
    ("field", "words"),
    [
        (noised("v", "long", 1.0, [-(2**62), 2**62]), "64-bit"),  # width 2^63
        (noised("v", "long", 1e-12, [0, 1e9]), "64-bit sampler"),  # scale 1e21: samples past 2^63
        (noised("v", "int", 1.0, [0, 2**31 - 1]), "range of int"),  # noise would be clamped half the time
        (noised("v", "int", 1.0, [0.2, 0.8]), "fewer than two integers"),
        (noised("v", "float", 1e-30, [0, 1e10]), "64-bit sampler"),
    ],
)
def test_bounds_whose_noise_cannot_be_represented_are_refused_with_the_field_path(
    field: dict[str, Any], words: str
) -> None:
    with pytest.raises(SchemaRulesError) as caught:
        compile_plan(schema(field), KEYS)
    (problem,) = caught.value.problems
    assert problem.path == "v" and problem.code == "invalid_rule"
    assert words in problem.message, problem.message


def test_a_forked_child_never_reuses_its_parents_noise() -> None:
    """A fork copied the parent's drawn samples: 200 of 200 child outputs equalled the parent's."""
    plan = compile_plan(schema(noised("v", "double", 1.0, [0, 120])), KEYS)

    def outputs(count: int) -> list[float]:
        records = plan.apply_batch([{"v": 60.0}] * count)
        assert not any(isinstance(r, RuleFailure) for r in records)
        return [r["v"] for r in records]  # type: ignore[index]

    outputs(1)  # the parent has started its pool: samples are waiting in memory when it forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its outputs and leave without running pytest's teardown
        try:
            os.write(write, json.dumps(outputs(200)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    parent = outputs(200)
    assert len(child) == 200
    # Distinct draws coincide with probability about 1/(2 * 1e9) each (discrete Laplace, 1e9 grid
    # steps of scale): one coincidence among 40,000 pairs is ~2e-5, two are ~2e-10.
    shared = set(parent) & set(child)
    assert len(shared) <= 1, f"{len(shared)} of 200 outputs shared with the parent"


def test_the_op_draws_from_the_same_distribution_as_opendps_own_measurement_on_the_value() -> None:
    """The pool adds OpenDP's integer noise to the value on a grid, exactly as OpenDP's float Laplace
    mechanism does inside (round to the 2^k grid, discrete Laplace in steps): the two samples of outputs
    for the same input agree (two-sample Kolmogorov-Smirnov, false alarm below 1e-6) and share the grid."""
    import opendp.prelude as dp

    from stream_anon.dp import BoundedValueNoise

    n = 1500
    ours = BoundedValueNoise(0, 120, 1.0, "double")
    dp.enable_features("contrib")
    theirs = dp.m.make_laplace(
        dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), ours.scale, k=ours.exponent
    )
    assert theirs.map(120.0) <= 1.0 + 1e-9
    a = sorted(ours(37.5) for _ in range(n))
    b = sorted(theirs(37.5) for _ in range(n))
    step = Fraction(2) ** ours.exponent
    assert all(on_grid(y, 0.0, step) for y in a + b)
    distance, i, j = 0.0, 0, 0
    while i < n and j < n:
        x = min(a[i], b[j])
        while i < n and a[i] == x:
            i += 1
        while j < n and b[j] == x:
            j += 1
        distance = max(distance, abs(i - j) / n)
    critical = math.sqrt(-math.log(1e-6 / 2) / 2) * math.sqrt(2 / n)
    assert distance < critical, f"KS distance {distance:.3f} to OpenDP's own (critical {critical:.3f})"
