"""scan: free text searched for PII (``stream_anon.detection``), each span replaced by a tag, a keyed
pseudonym or nothing. Batched: detection runs once per batch over all the texts of one scan rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import structlog

from stream_anon.crypto import HMAC_PURPOSE, pseudonym_function, pseudonym_prefix
from stream_anon.detection import Mode, ScannerUnavailable, Span, TextScanner, replace_spans
from stream_anon.ops.base import BatchApply, ItemFailure, Operation, RuleError, register

_log = structlog.get_logger(__name__)


@register
class Scan(Operation):
    name = "scan"
    accepts = frozenset({"string"})
    batched = True
    generated = False  # the text is the user's: the verifier checks what remains of it
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "entities": list,
        "threshold": (int, float),
        "replace": str,
        "key": str,
    }

    def check(self) -> None:
        if self.spec.get("replace", "tag") not in ("tag", "hmac", "remove"):
            raise RuleError("scan: replace must be tag, hmac or remove")
        threshold = self.spec.get("threshold", 0.5)
        if not 0 <= threshold <= 1:
            raise RuleError("scan: threshold must be between 0 and 1")
        entities = self.spec.get("entities")
        if entities is not None and (not entities or not all(isinstance(e, str) for e in entities)):
            raise RuleError("scan: entities must be a non-empty list of entity names")
        if self.spec.get("replace") == "hmac":
            self.key_name, self.version = self._key()

    def build_batch(self, scanner: TextScanner | None) -> BatchApply:
        if scanner is None:
            # compile_plan refuses a plan with batched fields and no scanner, with every other problem
            return _no_scanner
        detector = scanner
        entities_list = self.spec.get("entities")
        entities = frozenset(entities_list) if entities_list else None
        threshold: float | None = self.spec.get("threshold")
        mode: Mode = self.spec.get("replace", "tag")
        pseudonym = self._pseudonym() if mode == "hmac" else None

        def detect(
            texts: Sequence[str], known: Sequence[Sequence[tuple[str, str]]]
        ) -> list[list[Span] | ItemFailure]:
            """Detection for a batch; if the detector raises, text by text, failing only its records."""
            try:
                return list(detector.detect_batch(texts, known, entities=entities, threshold=threshold))
            except ScannerUnavailable:
                raise  # no record's fault: dead-lettering every record would hide it
            except Exception as exc:  # a detector bug costs one record, not a crash on every retry
                # Said, not only survived: a batch run again text by text costs several times as much.
                # The exception's type only; its message may quote a text.
                _log.warning("scan_batch_failed", error=type(exc).__name__, texts=len(texts))
            found: list[list[Span] | ItemFailure] = []
            for text, pairs in zip(texts, known, strict=True):
                try:
                    found.append(
                        detector.detect_batch([text], [pairs], entities=entities, threshold=threshold)[0]
                    )
                except ScannerUnavailable:
                    raise
                except Exception as exc:
                    found.append(ItemFailure(type(exc).__name__, "free-text detection failed"))
            return found

        def scan(texts: Sequence[str], known: Sequence[Sequence[tuple[str, str]]]) -> list[str | ItemFailure]:
            out: list[str | ItemFailure] = []
            for text, spans in zip(texts, detect(texts, known), strict=True):
                if isinstance(spans, ItemFailure):
                    out.append(spans)
                else:
                    out.append(replace_spans(text, spans, mode, pseudonym))
            return out

        return scan

    def _pseudonym(self) -> Callable[[str, str], str]:
        """``<ENTITY:hm1...>``: the span's pseudonym as the ``hmac`` operation gives it (normalized lower)."""
        token = pseudonym_function(
            self.keys.derive(self.key_name, self.version, HMAC_PURPOSE),
            pseudonym_prefix(self.key_name, self.version),
        )

        def pseudonym(entity: str, text: str) -> str:
            return f"<{entity}:{token(text.strip().lower().encode())}>"

        return pseudonym


def _no_scanner(texts: Sequence[str], known: Sequence[Sequence[tuple[str, str]]]) -> list[str | ItemFailure]:
    raise RuntimeError("scan rules need a scanner")
