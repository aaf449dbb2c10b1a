"""The schema model: Avro writer schemas as JSON, and the typed tree the rules and the verifier walk."""

from stream_anon.schema.json import ANNOTATIONS, TAGS, strip_annotations, strip_logical_types, without_keys

__all__ = ["ANNOTATIONS", "TAGS", "strip_annotations", "strip_logical_types", "without_keys"]
