{{/*
The gateway sidecar pair: Envoy (container "envoy") and the policy service (container "policy"),
one image, two containers, talking over Unix sockets on the shared emptyDir /run/relaygate.

Other charts include it next to their app; the argument is this chart's scope (here `$`, from a
parent chart `.Subcharts.relaygate`):

  metadata:
    labels:
      {{- include "relaygate.gateway.podLabels" .Subcharts.relaygate | nindent 6 }}
  spec:
    terminationGracePeriodSeconds: {{ include "relaygate.gateway.terminationGracePeriodSeconds" .Subcharts.relaygate }}
    containers:
      - name: app
        ...
      {{- include "relaygate.gateway.containers" .Subcharts.relaygate | nindent 6 }}
    volumes:
      {{- include "relaygate.gateway.volumes" .Subcharts.relaygate | nindent 6 }}

README.md shows the same pod as plain YAML for pods no chart renders.
*/}}

{{- define "relaygate.gateway.podLabels" -}}
relaygate.io/gateway: {{ include "relaygate.fullname" . }}
{{- end -}}

{{- define "relaygate.gateway.controlPlaneUrl" -}}
{{- if .Values.gateway.controlPlaneUrl -}}
{{- .Values.gateway.controlPlaneUrl -}}
{{- else if .Values.controlPlane.enabled -}}
{{- printf "http://%s-controlplane.%s.svc:%d" (include "relaygate.fullname" .) .Release.Namespace (int .Values.controlPlane.service.apiPort) -}}
{{- else -}}
{{- fail "gateway.controlPlaneUrl is needed when controlPlane.enabled is false: the gateway takes its policy and config from a control plane" -}}
{{- end -}}
{{- end -}}

{{- define "relaygate.gateway.xdsAddress" -}}
{{- if .Values.gateway.xdsAddress -}}
{{- .Values.gateway.xdsAddress -}}
{{- else if .Values.controlPlane.enabled -}}
{{- printf "%s-controlplane.%s.svc:%d" (include "relaygate.fullname" .) .Release.Namespace (int .Values.controlPlane.service.xdsPort) -}}
{{- else -}}
{{- fail "gateway.xdsAddress is needed when controlPlane.enabled is false: Envoy takes its listeners and routes from the control plane's ADS server" -}}
{{- end -}}
{{- end -}}

{{- define "relaygate.gateway.bundleKeyConfigMap" -}}
{{- if .Values.gateway.bundleSigningPublicKeyConfigMap -}}
{{- .Values.gateway.bundleSigningPublicKeyConfigMap -}}
{{- else if .Values.gateway.bundleSigningPublicKey -}}
{{- printf "%s-bundle-key" (include "relaygate.fullname" .) -}}
{{- else -}}
{{- fail (printf "the gateway pair needs the control plane's bundle-signing public key (it refuses bundles it cannot verify): set gateway.bundleSigningPublicKey, e.g. after installing the control plane:\n  kubectl -n %s exec deploy/%s-controlplane -c controlplane -- cat /var/lib/relaygate-cp/bundle-signing.pub > bundle-signing.pub\n  helm upgrade ... --set-file gateway.bundleSigningPublicKey=bundle-signing.pub\nor name an existing ConfigMap in gateway.bundleSigningPublicKeyConfigMap" .Release.Namespace (include "relaygate.fullname" .)) -}}
{{- end -}}
{{- end -}}

{{/*
Shutdown, in order: the pod is told to stop; Envoy keeps serving for preStopDelaySeconds (the app
finishes its last calls), then gets SIGTERM and drains for up to drainSeconds; the policy
container waits in its preStop until that drain is over plus 5 s (the last access-log entries
arrive and settle), then gets SIGTERM and closes its spool. The grace period covers all of it.
*/}}
{{- define "relaygate.gateway.policyPreStopSeconds" -}}
{{- add (int .Values.gateway.preStopDelaySeconds) (int .Values.gateway.drainSeconds) 5 -}}
{{- end -}}

{{- define "relaygate.gateway.terminationGracePeriodSeconds" -}}
{{- $minimum := add (include "relaygate.gateway.policyPreStopSeconds" . | int) 5 -}}
{{- $set := int .Values.gateway.terminationGracePeriodSeconds -}}
{{- if eq $set 0 -}}
{{- add (include "relaygate.gateway.policyPreStopSeconds" . | int) 10 -}}
{{- else if lt $set $minimum -}}
{{- fail (printf "gateway.terminationGracePeriodSeconds %d is too short: Envoy's preStop delay (%d s) and drain (%d s), the policy container's wait for the last receipts (5 s) and its own shutdown need at least %d" $set (int .Values.gateway.preStopDelaySeconds) (int .Values.gateway.drainSeconds) $minimum) -}}
{{- else -}}
{{- $set -}}
{{- end -}}
{{- end -}}

{{- define "relaygate.gateway.fleetTokenSecret" -}}
{{- .Values.gateway.fleetTokenSecret.name | default (include "relaygate.credentialsSecret" .) -}}
{{- end -}}

{{- define "relaygate.gateway.ledgerSecret" -}}
{{- if not (or .Values.gateway.ledger.existingSecret .Values.controlPlane.existingSecret .Values.controlPlane.redisUrl) -}}
{{- fail "gateway.ledger.type redis needs a Redis URL: controlPlane.redisUrl, or a Secret with the key redis-url in gateway.ledger.existingSecret or controlPlane.existingSecret" -}}
{{- end -}}
{{- .Values.gateway.ledger.existingSecret | default (include "relaygate.connectionsSecret" .) -}}
{{- end -}}

{{- define "relaygate.gateway.containers" -}}
{{- $g := .Values.gateway -}}
- name: envoy
  image: {{ include "relaygate.image" (dict "ctx" . "image" .Values.images.gateway) }}
  imagePullPolicy: {{ .Values.images.pullPolicy }}
  command:
    - relaygate-envoy
  args:
    - --xds
    - --ads
    - {{ include "relaygate.gateway.xdsAddress" . | quote }}
    - --plaintext
    - --node-id
    - $(RELAYGATE_INSTANCE_ID)
    - --tenant
    - {{ $g.tenant | quote }}
    - --zone
    - {{ $g.zone | quote }}
    - --listen-port
    - {{ $g.listenPort | quote }}
    - --admin-port
    - {{ $g.envoyAdminPort | quote }}
    - --health-port
    - {{ $g.healthPort | quote }}
    - --drain-seconds
    - {{ $g.drainSeconds | quote }}
    - --out
    - /tmp/envoy/bootstrap.json
  env:
    - name: RELAYGATE_INSTANCE_ID
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
  ports:
    - name: rg-gateway
      containerPort: {{ $g.listenPort }}
      protocol: TCP
    - name: rg-health
      containerPort: {{ $g.healthPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: rg-health
    periodSeconds: 2
    failureThreshold: 30
  readinessProbe:
    httpGet:
      path: /ready
      port: rg-health
    periodSeconds: 5
    failureThreshold: 2
  livenessProbe:
    httpGet:
      path: /healthz
      port: rg-health
    periodSeconds: 10
    failureThreshold: 3
  lifecycle:
    preStop:
      exec:
        command:
          - sleep
          - {{ $g.preStopDelaySeconds | quote }}
  resources:
    {{- toYaml $g.resources.envoy | nindent 4 }}
  securityContext:
    {{- include "relaygate.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: relaygate-run
      mountPath: /run/relaygate
    - name: relaygate-envoy-tmp
      mountPath: /tmp
- name: policy
  image: {{ include "relaygate.image" (dict "ctx" . "image" .Values.images.gateway) }}
  imagePullPolicy: {{ .Values.images.pullPolicy }}
  command:
    - relaygate-extproc
  {{- if eq $g.ledger.type "redis" }}
  args:
    - --ledger
    - redis
  {{- end }}
  env:
    - name: RELAYGATE_INSTANCE_ID
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: RELAYGATE_SIDECAR
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: RELAYGATE_DATA_DIR
      value: /var/lib/relaygate
    - name: RELAYGATE_EXTPROC_LISTEN
      value: unix:/run/relaygate/extproc.sock
    - name: RELAYGATE_AUTHZ_LISTEN
      value: unix:/run/relaygate/authz.sock
    - name: RELAYGATE_ADMIN_HOST
      value: "0.0.0.0"
    - name: RELAYGATE_ADMIN_PORT
      value: {{ $g.metricsPort | quote }}
    - name: RELAYGATE_CONTROL_PLANE
      value: {{ include "relaygate.gateway.controlPlaneUrl" . | quote }}
    - name: RELAYGATE_CONTROL_PLANE_KEY
      value: /etc/relaygate/control-plane/bundle-signing.pub
    - name: RELAYGATE_FLEET_TOKEN_FILE
      value: /run/secrets/relaygate/fleet-token
    - name: RELAYGATE_TENANT
      value: {{ $g.tenant | quote }}
    - name: RELAYGATE_ZONE
      value: {{ $g.zone | quote }}
    - name: RELAYGATE_LOG_LEVEL
      value: {{ $g.logLevel | quote }}
    {{- if eq $g.ledger.type "redis" }}
    - name: RELAYGATE_LEDGER_URL_FILE
      value: /run/secrets/relaygate-ledger/redis-url
    {{- end }}
    {{- with $g.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: rg-metrics
      containerPort: {{ $g.metricsPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: rg-metrics
    periodSeconds: 2
    failureThreshold: 30
  readinessProbe:
    httpGet:
      path: /healthz
      port: rg-metrics
    periodSeconds: 5
    failureThreshold: 2
  livenessProbe:
    httpGet:
      path: /healthz
      port: rg-metrics
    periodSeconds: 10
    failureThreshold: 3
  lifecycle:
    preStop:
      exec:
        command:
          - sleep
          - {{ include "relaygate.gateway.policyPreStopSeconds" . | quote }}
  resources:
    {{- toYaml $g.resources.policy | nindent 4 }}
  securityContext:
    {{- include "relaygate.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: relaygate-run
      mountPath: /run/relaygate
    - name: relaygate-policy-tmp
      mountPath: /tmp
    - name: relaygate-data
      mountPath: /var/lib/relaygate
    - name: relaygate-fleet-token
      mountPath: /run/secrets/relaygate
      readOnly: true
    - name: relaygate-bundle-key
      mountPath: /etc/relaygate/control-plane
      readOnly: true
    {{- if eq $g.ledger.type "redis" }}
    - name: relaygate-ledger
      mountPath: /run/secrets/relaygate-ledger
      readOnly: true
    {{- end }}
{{- end -}}

{{/*
The pair's volumes. Secret files are mode 0444 (292): the pair may run in a pod without
fsGroup 10001, and only the containers that mount a volume can see it anyway.
*/}}
{{- define "relaygate.gateway.volumes" -}}
- name: relaygate-run
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: relaygate-envoy-tmp
  emptyDir:
    sizeLimit: 64Mi
- name: relaygate-policy-tmp
  emptyDir:
    sizeLimit: 64Mi
- name: relaygate-data
  emptyDir:
    sizeLimit: 1Gi
- name: relaygate-fleet-token
  secret:
    secretName: {{ include "relaygate.gateway.fleetTokenSecret" . }}
    defaultMode: 292
    items:
      - key: {{ .Values.gateway.fleetTokenSecret.key }}
        path: fleet-token
- name: relaygate-bundle-key
  configMap:
    name: {{ include "relaygate.gateway.bundleKeyConfigMap" . }}
    items:
      - key: bundle-signing.pub
        path: bundle-signing.pub
{{- if eq .Values.gateway.ledger.type "redis" }}
- name: relaygate-ledger
  secret:
    secretName: {{ include "relaygate.gateway.ledgerSecret" . }}
    defaultMode: 292
    items:
      - key: redis-url
        path: redis-url
{{- end }}
{{- end -}}
