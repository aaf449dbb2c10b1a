{{/* Names and labels shared by every manifest of the chart. */}}

{{- define "stream-anon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stream-anon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stream-anon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selects the worker and audit pods of this release alike (the NetworkPolicy covers both). */}}
{{- define "stream-anon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stream-anon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stream-anon.labels" -}}
helm.sh/chart: {{ include "stream-anon.chart" . }}
{{ include "stream-anon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "stream-anon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stream-anon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "stream-anon.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "stream-anon.metricsPort" -}}
{{- .Values.config.metrics_port | default 9400 | int }}
{{- end }}

{{/* Where the files the chart manages are mounted; config.yaml names them. */}}
{{- define "stream-anon.paths" -}}
config: /etc/stream-anon/config.yaml
tagPolicy: /etc/stream-anon/tag-policy.yaml
schemas: /etc/stream-anon/schemas
keysSecret: /etc/stream-anon/keys-secret
keysDir: /etc/stream-anon/keys
keysFile: /etc/stream-anon/keys/keys.json
kafkaSecretsDir: /etc/stream-anon/kafka-secrets
kafkaTlsDir: /etc/stream-anon/kafka-tls
{{- end }}

{{- define "stream-anon.keysSecretName" -}}
{{- default (printf "%s-keys" (include "stream-anon.fullname" .)) .Values.keys.existingSecret }}
{{- end }}

{{/*
Kafka credentials and the brokers' CA come only from Secrets that exist before the release: a value in
plain text would be stored in the release's history (a Secret of the Helm release, readable by anyone who
can read the namespace's releases) and printed by `helm get values`. Refuses, with what to do instead:
  - secret librdkafka keys in config.kafka (passwords, passphrases, client secrets, PEM keys, JAAS and
    OAUTHBEARER configurations), and an inline CA (ssl.ca.pem);
  - any key of kafkaSecrets and kafkaTls but the Secret's name and key (the removed kafkaSecrets.content).
*/}}
{{- define "stream-anon.refuseSecretsInValues" -}}
{{- $howto := "create a Secret (kubectl create secret generic NAME --from-file=secrets.yaml) and name it in kafkaSecrets.existingSecret; see the chart's README, TLS and SASL" }}
{{- range $key, $_ := (.Values.config.kafka | default dict) }}
{{- if eq $key "ssl.ca.pem" }}
{{- fail "config.kafka.ssl.ca.pem: the brokers' CA comes from a Secret named by kafkaTls.existingSecret (key kafkaTls.caKey), not from values" }}
{{- else if regexMatch "(?i)(password|passphrase|secret|\\.pem$|^ssl_key$|^sasl\\.jaas\\.config$|^sasl\\.oauthbearer\\.config$)" $key }}
{{- fail (printf "config.kafka.%s is a secret and must not be in values: %s" $key $howto) }}
{{- end }}
{{- end }}
{{- range $key, $_ := .Values.kafkaSecrets }}
{{- if not (has $key (list "existingSecret" "secretKey")) }}
{{- fail (printf "kafkaSecrets.%s is not accepted: Kafka credentials never come from values; %s" $key $howto) }}
{{- end }}
{{- end }}
{{- range $key, $_ := .Values.kafkaTls }}
{{- if not (has $key (list "existingSecret" "caKey")) }}
{{- fail (printf "kafkaTls.%s is not accepted: the brokers' CA comes from an existing Secret (kafkaTls.existingSecret, key kafkaTls.caKey)" $key) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stream-anon.kafkaSecretsEnabled" -}}
{{- if .Values.kafkaSecrets.existingSecret }}true{{- end }}
{{- end }}

{{- define "stream-anon.schemasConfigMapName" -}}
{{- default (printf "%s-schemas" (include "stream-anon.fullname" .)) .Values.schemas.existingConfigMap }}
{{- end }}

{{/*
The configuration file: the user's config plus the paths the chart mounts. Fails on a key the chart
manages, on a grace period that does not outlast the worker's shutdown bound, and on sealed dead letters
required without a keys file.
*/}}
{{- define "stream-anon.configYaml" -}}
{{- $paths := include "stream-anon.paths" . | fromYaml }}
{{- range $key := list "schemas_dir" "keys_file" "tag_policy_file" "kafka_secrets_file" "transactional_id" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s is set by the chart; remove it from config (see values.yaml)" $key) }}
{{- end }}
{{- end }}
{{- include "stream-anon.refuseSecretsInValues" . }}
{{- if and .Values.kafkaTls.existingSecret (hasKey (.Values.config.kafka | default dict) "ssl.ca.location") }}
{{- fail "config.kafka.ssl.ca.location is set by the chart from kafkaTls; remove it from config" }}
{{- end }}
{{- $shutdown := .Values.config.shutdown_timeout_s | default 20 | float64 }}
{{- if le (.Values.terminationGracePeriodSeconds | float64) $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be longer than config.shutdown_timeout_s (%v)" .Values.terminationGracePeriodSeconds $shutdown) }}
{{- end }}
{{- if and .Values.config.dlq_encryption_required (not .Values.keys.enabled) }}
{{- fail "config.dlq_encryption_required needs keys.enabled: dead letters are sealed with a key of the keys file (or set it false)" }}
{{- end }}
{{- $managed := dict "schemas_dir" $paths.schemas }}
{{- if .Values.keys.enabled }}
{{- $_ := set $managed "keys_file" $paths.keysFile }}
{{- end }}
{{- if .Values.tagPolicy }}
{{- $_ := set $managed "tag_policy_file" $paths.tagPolicy }}
{{- end }}
{{- if include "stream-anon.kafkaSecretsEnabled" . }}
{{- $_ := set $managed "kafka_secrets_file" (printf "%s/%s" $paths.kafkaSecretsDir .Values.kafkaSecrets.secretKey) }}
{{- end }}
{{- if .Values.kafkaTls.existingSecret }}
{{- $_ := set $managed "kafka" (dict "ssl.ca.location" (printf "%s/%s" $paths.kafkaTlsDir .Values.kafkaTls.caKey)) }}
{{- end }}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.config) $managed) }}
{{- end }}

{{/* Pod volumes shared by the worker and the audit. */}}
{{- define "stream-anon.volumes" -}}
- name: config
  configMap:
    name: {{ include "stream-anon.fullname" . }}
- name: schemas
  configMap:
    name: {{ include "stream-anon.schemasConfigMapName" . }}
{{- if .Values.keys.enabled }}
- name: keys-secret
  secret:
    secretName: {{ include "stream-anon.keysSecretName" . }}
    # Group-readable through fsGroup, for the init container only; the worker reads the 0600 copy.
    defaultMode: 0440
    items:
      - key: {{ .Values.keys.secretKey }}
        path: keys.json
- name: keys
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- if include "stream-anon.kafkaSecretsEnabled" . }}
- name: kafka-secrets
  secret:
    secretName: {{ .Values.kafkaSecrets.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if .Values.kafkaTls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafkaTls.existingSecret }}
    defaultMode: 0444
    items:
      - key: {{ .Values.kafkaTls.caKey }}
        path: {{ .Values.kafkaTls.caKey }}
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "stream-anon.volumeMounts" -}}
{{- $paths := include "stream-anon.paths" . | fromYaml -}}
- name: config
  mountPath: {{ $paths.config }}
  subPath: config.yaml
  readOnly: true
{{- if .Values.tagPolicy }}
- name: config
  mountPath: {{ $paths.tagPolicy }}
  subPath: tag-policy.yaml
  readOnly: true
{{- end }}
- name: schemas
  mountPath: {{ $paths.schemas }}
  readOnly: true
{{- if .Values.keys.enabled }}
- name: keys
  mountPath: {{ $paths.keysDir }}
  readOnly: true
{{- end }}
{{- if include "stream-anon.kafkaSecretsEnabled" . }}
- name: kafka-secrets
  mountPath: {{ $paths.kafkaSecretsDir }}
  readOnly: true
{{- end }}
{{- if .Values.kafkaTls.existingSecret }}
- name: kafka-tls
  mountPath: {{ $paths.kafkaTlsDir }}
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Copies the keys file from the Secret volume to a 0600 file owned by the worker's user. */}}
{{- define "stream-anon.keysInitContainer" -}}
{{- $paths := include "stream-anon.paths" . | fromYaml -}}
- name: keys
  image: {{ include "stream-anon.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["install", "-m", "0600", "{{ $paths.keysSecret }}/keys.json", "{{ $paths.keysFile }}"]
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  volumeMounts:
    - name: keys-secret
      mountPath: {{ $paths.keysSecret }}
      readOnly: true
    - name: keys
      mountPath: {{ $paths.keysDir }}
{{- end }}

{{/* Checksums of what the chart renders into the pods' files: a change rolls the pods. */}}
{{- define "stream-anon.checksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/schemas: {{ include (print $.Template.BasePath "/configmap-schemas.yaml") . | sha256sum }}
checksum/secrets: {{ include (print $.Template.BasePath "/secrets.yaml") . | sha256sum }}
{{- end }}
