"""stream-anon: a streaming PII anonymizer for Apache Kafka."""

__version__ = "0.1.0"
