{{/*
Names, labels and shared pieces. Names are cut to 42 characters so that the longest suffix
("-controlplane-data") still fits a 63-character DNS label.
*/}}
{{- define "relaygate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 42 | trimSuffix "-" -}}
{{- end -}}

{{- define "relaygate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 42 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "relaygate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "relaygate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: relaygate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "controlplane") */}}
{{- define "relaygate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "relaygate.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "relaygate.componentLabels" -}}
{{ include "relaygate.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: (dict "ctx" $ "image" .Values.images.gateway). A digest wins over the tag. */}}
{{- define "relaygate.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "relaygate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "relaygate.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "relaygate.credentialsSecret" -}}
{{- .Values.controlPlane.credentials.existingSecret | default (printf "%s-credentials" (include "relaygate.fullname" .)) -}}
{{- end -}}

{{- define "relaygate.connectionsSecret" -}}
{{- .Values.controlPlane.existingSecret | default (printf "%s-connections" (include "relaygate.fullname" .)) -}}
{{- end -}}

{{/* Whether the control plane has a database URL (from the values or an existing Secret). */}}
{{- define "relaygate.hasDatabase" -}}
{{- if or .Values.controlPlane.databaseUrl .Values.controlPlane.existingSecret }}true{{ end -}}
{{- end -}}

{{/*
A value of a chart-made Secret that must survive upgrades: the live Secret's value when the
release already has one (`lookup`, base64 as stored), else a new one. Under `helm template` and
`--dry-run` lookup finds nothing and every render generates afresh; that is why existingSecret
exists. Args: (dict "ctx" $ "secret" NAME "key" KEY "new" VALUE)
*/}}
{{- define "relaygate.keptSecretValue" -}}
{{- $live := lookup "v1" "Secret" .ctx.Release.Namespace .secret -}}
{{- if and $live $live.data (hasKey $live.data .key) -}}
{{- index $live.data .key -}}
{{- else -}}
{{- .new | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Container security context every relaygate container runs with (uid/gid 10001). */}}
{{- define "relaygate.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "relaygate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "relaygate.imagePullSecrets" -}}
imagePullSecrets:
{{- range .Values.images.pullSecrets }}
  - name: {{ . }}
{{- end }}
{{- end -}}
