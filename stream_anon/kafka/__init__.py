"""The Kafka layer: everything that talks to librdkafka, for the worker and the analytics commands.

* ``clients``: client configuration from ``Settings`` (the one place librdkafka settings are built,
  the user's ``kafka`` mapping and secrets passed through) and the start-up topic check.
* ``errors``: ``FatalKafkaError``, the problem a process stops on.
* ``retry``: retrying a call while librdkafka says its error is retriable.
* ``reader``: the one bounded topic reader (a topic from a start to the end offsets it has when read).
* ``protocols``: the narrow consumer and producer interfaces the worker's parts use (the real clients
  satisfy them; tests use in-memory fakes).
* ``batch``: a consumed batch and its offsets; cutting a batch around suspect records.
* ``source``: the worker's consumer in the group.
* ``writes``: writing outcomes, and matching failed writes to the records that made them.
* ``transactions``: the transactional producer (exactly-once) shared by the worker and the aggregate job.
* ``delivery``: the commit strategies, ``ExactlyOnce`` and ``AtLeastOnce``.
* ``watchdog``: ends the process when a transactional call hangs past every timeout.
"""
