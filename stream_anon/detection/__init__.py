"""Detection of PII in text: one package for the scan op, the leak verifier, the audit and the log scrubber.

Modules, lightest first (importing this package loads none of the NLP stack):

* ``text``: what every detector reads (NFKC normalization with a map back, digit runs, folded words)
  and the one digit policy;
* ``spans``: ``Span``, the ``TextScanner`` protocol, merging overlaps and ``replace_spans``;
* ``validated``: pattern detectors proved by checksum or grammar (emails, cards, IBANs, phones, ...),
  which the verifier runs over every sanitized string and the scan runs as a Presidio recognizer;
* ``contextual``: detectors proved by context or shape (obfuscated emails, dates of birth, profile URLs:
  verifier and scan; street addresses and names: scan only), and the detector sets ``VERIFIER`` and
  ``SCAN``;
* ``settings``: ``ScanSettings`` (the configuration's ``scan`` section);
* ``config`` + ``recognizers.yaml``: which recognizers run, with their patterns and scores;
* ``record_aware``: the record's own PII values found in its text;
* ``recognizers`` and ``scanner``: Presidio and spaCy (loaded on first use), ``Scanner.detect_batch``.
"""

from stream_anon.detection.settings import DEFAULT_ENTITIES, DEFAULT_MODEL, ScanSettings
from stream_anon.detection.spans import Mode, ScanError, ScannerUnavailable, Span, TextScanner, replace_spans

__all__ = [
    "DEFAULT_ENTITIES",
    "DEFAULT_MODEL",
    "Mode",
    "ScanError",
    "ScanSettings",
    "ScannerUnavailable",
    "Span",
    "TextScanner",
    "replace_spans",
]
