{{/* Names, labels and the pieces every pod of the chart shares. */}}

{{- define "polycopy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "polycopy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "polycopy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "polycopy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* part-of is the job label of the PodMonitor/ServiceMonitor: job="polycopy", as in infra/prometheus. */}}
{{- define "polycopy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "polycopy.selectorLabels" . }}
app.kubernetes.io/part-of: polycopy
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "polycopy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "polycopy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "polycopy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The command (after the image's `polycopy` entry point) and metrics port offset of each component;
     the offsets are those of polycopy/infra/metrics.py DEFAULT_PORTS (worker 9108 ... alerts 9114). */}}
{{- define "polycopy.componentArgs" -}}
{{- $args := dict "producer" "rtds" "worker" "worker" "books" "books" "executor" "executor" "sink" "sink" "alerts" "alerts" -}}
{{- get $args . -}}
{{- end -}}

{{- define "polycopy.metricsPort" -}}
{{- $offsets := dict "worker" 0 "executor" 1 "producer" 2 "sink" 3 "poller" 4 "books" 5 "alerts" 6 -}}
{{- add .root.Values.settings.metricsBasePort (get $offsets .component) -}}
{{- end -}}

{{- define "polycopy.databaseSecretName" -}}
{{- default (printf "%s-secrets" (include "polycopy.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "polycopy.liveSecretName" -}}
{{- default (printf "%s-secrets" (include "polycopy.fullname" .)) .Values.live.existingSecret -}}
{{- end -}}

{{- define "polycopy.isLive" -}}
{{- if eq (toString .Values.settings.executionMode) "live" -}}true{{- end -}}
{{- end -}}

{{/* Refuse at render time what the application would refuse at start-up. */}}
{{- define "polycopy.validate" -}}
{{- if and (include "polycopy.isLive" .) (not (or .Values.live.privateKey .Values.live.existingSecret)) -}}
{{- fail "settings.executionMode=live needs live.privateKey or live.existingSecret (paper is the default)" -}}
{{- end -}}
{{- $credentials := list .Values.live.clobApiKey .Values.live.clobApiSecret .Values.live.clobApiPassphrase | compact -}}
{{- if and $credentials (ne (len $credentials) 3) -}}
{{- fail "live.clobApiKey, live.clobApiSecret and live.clobApiPassphrase: all three or none" -}}
{{- end -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) -}}
{{- fail "set database.url or database.existingSecret" -}}
{{- end -}}
{{- if and .Values.monitoring.podMonitor.enabled .Values.monitoring.serviceMonitor.enabled -}}
{{- fail "enable monitoring.podMonitor or monitoring.serviceMonitor, not both (every target would be scraped twice)" -}}
{{- end -}}
{{- end -}}

{{/* Environment of every polycopy container: the settings ConfigMap (or its hook copy) and the secrets. */}}
{{- define "polycopy.env" -}}
envFrom:
  - configMapRef:
      name: {{ .configMap }}
env:
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "polycopy.databaseSecretName" .root }}
        key: {{ if .root.Values.database.existingSecret }}{{ .root.Values.database.existingSecretKey }}{{ else }}database-url{{ end }}
{{- if include "polycopy.isLive" .root }}
  - name: POLYCOPY_PRIVATE_KEY
    valueFrom:
      secretKeyRef:
        name: {{ include "polycopy.liveSecretName" .root }}
        key: {{ if .root.Values.live.existingSecret }}{{ .root.Values.live.existingSecretKey }}{{ else }}private-key{{ end }}
{{- if include "polycopy.hasApiCredentials" .root }}
{{- range $variable, $key := dict "POLYCOPY_CLOB_API_KEY" "clob-api-key" "POLYCOPY_CLOB_API_SECRET" "clob-api-secret" "POLYCOPY_CLOB_API_PASSPHRASE" "clob-api-passphrase" }}
  - name: {{ $variable }}
    valueFrom:
      secretKeyRef:
        name: {{ include "polycopy.liveSecretName" $.root }}
        key: {{ $key }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The alerts sink's webhook URL is a credential: only the alerts container gets it, from a Secret. */}}
{{- define "polycopy.hasAlertWebhook" -}}
{{- if or .Values.alerting.webhookUrl .Values.alerting.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "polycopy.alertingSecretName" -}}
{{- default (printf "%s-secrets" (include "polycopy.fullname" .)) .Values.alerting.existingSecret -}}
{{- end -}}

{{/* CLOB API credentials come from the live Secret (all three), or are derived from the signer at start-up. */}}
{{- define "polycopy.hasApiCredentials" -}}
{{- if or .Values.live.apiCredentialsInSecret .Values.live.clobApiKey -}}true{{- end -}}
{{- end -}}

{{/* The settings as POLYCOPY_* variables (camelCase key -> POLYCOPY_SNAKE_CASE), plus the ones the chart owns. */}}
{{- define "polycopy.settingsData" -}}
{{- range $key, $value := .Values.settings }}
POLYCOPY_{{ $key | snakecase | upper }}: {{ $value | toString | quote }}
{{- end }}
POLYCOPY_DATA_DIR: "/var/lib/polycopy"
POLYCOPY_METRICS_ENABLED: "true"
POLYCOPY_METRICS_PORT: "0"
{{- end -}}

{{- define "polycopy.podSecurity" -}}
serviceAccountName: {{ include "polycopy.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Writable places under a read-only root filesystem: the data dir (Faust tables, state) and /tmp. */}}
{{- define "polycopy.volumeMounts" -}}
- name: data
  mountPath: /var/lib/polycopy
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "polycopy.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
{{- end -}}

{{/* One step of the setup Job. It runs in paper mode whatever the release's mode: it places no order and so
     needs no signer key. */}}
{{- define "polycopy.setupContainer" -}}
{{- $root := .root -}}
image: {{ include "polycopy.image" $root }}
imagePullPolicy: {{ $root.Values.image.pullPolicy }}
args: {{ toJson .args }}
envFrom:
  - configMapRef:
      name: {{ .configMap }}
env:
  - name: POLYCOPY_EXECUTION_MODE
    value: paper
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ $root.Values.database.existingSecret | default .configMap }}
        key: {{ if $root.Values.database.existingSecret }}{{ $root.Values.database.existingSecretKey }}{{ else }}database-url{{ end }}
resources:
  {{- toYaml $root.Values.setup.resources | nindent 2 }}
securityContext:
  {{- toYaml $root.Values.securityContext | nindent 2 }}
volumeMounts:
  {{- include "polycopy.volumeMounts" $root | nindent 2 }}
  {{- if $root.Values.walletFile }}
  - name: wallets
    mountPath: /etc/polycopy
    readOnly: true
  {{- end }}
{{- end -}}
