#!/usr/bin/env bash
# Checks the deployment files offline: the Helm chart (helm lint, helm template with the default values,
# with every optional feature on, with the HPA instead of KEDA and with the README's secured release, the
# refusals of secrets in values, every rendered manifest validated
# against the Kubernetes schemas), the Dockerfile (hadolint), docker-compose.test.yml (the compose-spec
# schema and its wiring) and the image's requirements.lock (pip resolves it to exactly its pins).
#
# helm is built from its Go sources through the Go module proxy at a pinned version and cached in
# .cache/bin (the first build takes minutes). Runs every check, prints a summary, exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

HELM_VERSION=v3.22.0
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBE_VERSIONS=(1.29.0 1.37.0)
CHART=helm/stream-anon
BIN=$ROOT/.cache/bin
HELM=$BIN/helm
PY=$ROOT/.venv/bin/python

bash scripts/setup.sh || { echo "check-deploy: scripts/setup.sh failed" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

failed=()
passed=()
step() { echo; echo "==> $*"; }
record() { # record NAME STATUS
  if [ "$2" -eq 0 ]; then passed+=("$1"); else failed+=("$1"); echo "  FAILED: $1"; fi
}

# --- helm, built once per pinned version -----------------------------------------------------------
build_helm() {
  if [ -x "$HELM" ] && [ "$(cat "$BIN/helm.version" 2>/dev/null)" = "$HELM_VERSION" ]; then
    echo "  cached: $HELM ($HELM_VERSION)"
    return 0
  fi
  command -v go >/dev/null || { echo "  go is not installed: cannot build helm"; return 1; }
  echo "  building helm $HELM_VERSION with $(go version | cut -d' ' -f3) (go install through the module proxy; minutes)"
  local out=$WORK/gobin start=$SECONDS
  mkdir -p "$out" "$BIN"
  # The link flags of Helm's own release build (its Makefile): the version `helm version` prints, and the
  # Kubernetes version of its client-go as the default of `helm template` (else v1.20, below our kubeVersion).
  local gomod k8s_minor
  gomod=$(GOTOOLCHAIN=local go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  k8s_minor=$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$gomod")
  [ -n "$k8s_minor" ] || { echo "  cannot read helm's client-go version from $gomod"; return 1; }
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  GOBIN=$out GOTOOLCHAIN=local go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
    >"$WORK/helm-build.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    if (( (SECONDS - start) % 30 < 5 )); then
      echo "  ... still building helm: $((SECONDS - start)) s, $(grep -c '^go: downloading' "$WORK/helm-build.log") modules downloaded"
    fi
  done
  if ! wait "$pid"; then
    tail -20 "$WORK/helm-build.log"
    return 1
  fi
  mv "$out/helm" "$HELM" && echo "$HELM_VERSION" >"$BIN/helm.version"
  echo "  built $HELM in $((SECONDS - start)) s"
}

step "helm $HELM_VERSION"
build_helm
record "build helm $HELM_VERSION" $?
if [ -x "$HELM" ]; then
  "$HELM" version --short 2>/dev/null | sed 's/^/  helm version: /'
fi

# --- chart ----------------------------------------------------------------------------------------
if [ -x "$HELM" ]; then
  export HELM_CACHE_HOME=$WORK/helm/cache HELM_CONFIG_HOME=$WORK/helm/config HELM_DATA_HOME=$WORK/helm/data
  # A real keys file, passed as the docs say (--set-file), so the chart's own Secret renders too.
  .venv/bin/stream-anon keys generate --output "$WORK/keys.json" --dlq-key dlq 2>/dev/null
  ALL=(-f "$CHART/ci/all-features-values.yaml" --set-file "keys.content=$WORK/keys.json")

  step "helm lint"
  echo "  default values:"
  "$HELM" lint --strict "$CHART" | sed 's/^/    /'
  record "helm lint (default values)" "${PIPESTATUS[0]}"
  echo "  all features (ci/all-features-values.yaml):"
  "$HELM" lint --strict "$CHART" "${ALL[@]}" | sed 's/^/    /'
  record "helm lint (all features)" "${PIPESTATUS[0]}"

  render() { # render NAME EXPECTED-KINDS -- helm template arguments
    local name=$1 expect=$2
    shift 3
    if "$HELM" template stream-anon "$CHART" --namespace streaming "$@" >"$WORK/$name.yaml" 2>"$WORK/$name.err"; then
      local args=()
      for v in "${KUBE_VERSIONS[@]}"; do args+=(--kube-version "$v"); done
      # shellcheck disable=SC2086 # the expected kinds are separate words
      "$PY" scripts/check_deploy.py manifests "$WORK/$name.yaml" "${args[@]}" --expect $expect
      record "helm template + validate ($name)" $?
    else
      sed 's/^/  /' "$WORK/$name.err"
      record "helm template ($name)" 1
    fi
  }
  refuses() { # refuses NAME EXPECTED-MESSAGE -- helm template arguments: the chart must fail to render
    local name=$1 message=$2
    shift 3
    if "$HELM" template stream-anon "$CHART" "$@" >/dev/null 2>"$WORK/refuse.err"; then
      echo "  rendered although it should not: $name"
      record "chart refuses $name" 1
    elif grep -q "$message" "$WORK/refuse.err"; then
      echo "  refused as expected: $name"
      record "chart refuses $name" 0
    else
      sed 's/^/  /' "$WORK/refuse.err"
      record "chart refuses $name" 1
    fi
  }

  step "helm template and offline validation (Kubernetes ${KUBE_VERSIONS[*]}, kubernetes-validate)"
  BASE="ConfigMap Deployment PodDisruptionBudget Service ServiceAccount"
  render default "$BASE" --
  render all-features "$BASE Secret ScaledObject ServiceMonitor NetworkPolicy CronJob" -- "${ALL[@]}"
  render hpa "$BASE HorizontalPodAutoscaler" -- "${ALL[@]}" --set autoscaling.type=hpa
  # the README's secured release: credentials and CA from existing Secrets, nothing secret in values
  render secured "$BASE" -- -f "$CHART/ci/secured-values.yaml"
  refuses "a grace period not above shutdown_timeout_s" "must be longer than config.shutdown_timeout_s" \
    -- --set terminationGracePeriodSeconds=20
  refuses "keys_file set in config" "config.keys_file is set by the chart" -- --set config.keys_file=/x.json
  refuses "a password in config.kafka" "config.kafka.sasl.password is a secret" \
    -- --set 'config.kafka.sasl\.password=plain'
  refuses "a credential mapping in values (kafkaSecrets.content)" "kafkaSecrets.content is not accepted" \
    -- --set 'kafkaSecrets.content.sasl\.password=plain'
  refuses "a CA inline in config.kafka" "config.kafka.ssl.ca.pem: the brokers' CA comes from a Secret" \
    -- --set 'config.kafka.ssl\.ca\.pem=PEM'
  refuses "ssl.ca.location next to kafkaTls" "ssl.ca.location is set by the chart" \
    -- --set kafkaTls.existingSecret=ca --set 'config.kafka.ssl\.ca\.location=/x.pem'
fi

# --- Dockerfile -----------------------------------------------------------------------------------
step "hadolint Dockerfile"
.venv/bin/hadolint --version | sed 's/^/  /'
# Every inline ignore must say why on the comment line above it.
unexplained=$(awk '/# hadolint ignore=/ { if (prev !~ /^#/ || prev ~ /hadolint/) print FILENAME ":" NR } { prev = $0 }' Dockerfile)
if [ -n "$unexplained" ]; then echo "  inline ignore without a reason above it: $unexplained"; fi
.venv/bin/hadolint --failure-threshold style Dockerfile | sed 's/^/  /'
status=${PIPESTATUS[0]}
[ -z "$unexplained" ] || status=1
[ "$status" -eq 0 ] && echo "  no findings ($(grep -c 'hadolint ignore=' Dockerfile) inline ignores)"
record "hadolint Dockerfile" "$status"

# --- compose --------------------------------------------------------------------------------------
step "docker-compose.test.yml"
# The compose-spec JSON schema ships with check-jsonschema.
if ! "$PY" -c "import check_jsonschema" 2>/dev/null; then
  echo "  installing check-jsonschema (it carries the compose-spec schema)"
  "$PY" -m pip install --quiet --progress-bar off check-jsonschema==0.39.0
fi
"$PY" scripts/check_deploy.py compose docker-compose.test.yml
record "compose file" $?

# --- the image's lock -----------------------------------------------------------------------------
step "requirements.lock resolves for the image (pip --dry-run, linux x86_64, Python 3.11)"
stamp=$ROOT/.cache/check-deploy/lock-$(sha256sum requirements.lock | cut -c1-16).ok
if [ -f "$stamp" ]; then
  echo "  unchanged since the last successful check ($stamp)"
  record "requirements.lock" 0
else
  "$PY" scripts/check_deploy.py lock-check requirements.lock
  status=$?
  [ "$status" -eq 0 ] && mkdir -p "$(dirname "$stamp")" && touch "$stamp"
  record "requirements.lock" "$status"
fi

# --- summary --------------------------------------------------------------------------------------
echo
echo "check-deploy: ${#passed[@]} passed, ${#failed[@]} failed"
for f in "${failed[@]}"; do echo "  failed: $f"; done
[ "${#failed[@]}" -eq 0 ]
