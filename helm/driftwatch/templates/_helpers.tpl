{{/* Names and labels shared by every object of the chart. */}}

{{- define "driftwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftwatch.fullname" -}}
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

{{- define "driftwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "driftwatch.labels" -}}
helm.sh/chart: {{ include "driftwatch.chart" . }}
{{ include "driftwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "driftwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "driftwatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "driftwatch.image" -}}
{{- printf "%s:%s" .Values.driftwatch.image.repository (default .Chart.AppVersion .Values.driftwatch.image.tag) -}}
{{- end -}}

{{/* Where the admin token Secret is mounted; admin.token_file points at it. */}}
{{- define "driftwatch.adminTokenDir" -}}/var/run/secrets/driftwatch/admin{{- end -}}

{{/*
The driftwatch config file: the driftwatch.config subtree with the listeners set from
driftwatch.ports (the probes, the Service and the monitors use those ports, so they must agree),
admin.token_file set when an admin token Secret is given, and upstream.url defaulting to the
model container's port on localhost.
*/}}
{{- define "driftwatch.config" -}}
{{- $config := deepCopy (.Values.driftwatch.config | default dict) -}}
{{- $_ := set $config "listen" (printf "0.0.0.0:%d" (int .Values.driftwatch.ports.proxy)) -}}
{{- $admin := deepCopy (get $config "admin" | default dict) -}}
{{- $_ := set $admin "listen" (printf "0.0.0.0:%d" (int .Values.driftwatch.ports.admin)) -}}
{{- if .Values.driftwatch.adminToken.existingSecret -}}
{{- $_ := set $admin "token_file" (printf "%s/%s" (include "driftwatch.adminTokenDir" .) .Values.driftwatch.adminToken.key) -}}
{{- end -}}
{{- $_ := set $config "admin" $admin -}}
{{- $upstream := deepCopy (get $config "upstream" | default dict) -}}
{{- if not $upstream.url -}}
{{- $_ := set $upstream "url" (printf "http://127.0.0.1:%d" (int .Values.model.port)) -}}
{{- end -}}
{{- $_ := set $config "upstream" $upstream -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The driftwatch container; a regular container, or a native sidecar (init container). */}}
{{- define "driftwatch.container" -}}
- name: driftwatch
  image: {{ include "driftwatch.image" . | quote }}
  imagePullPolicy: {{ .Values.driftwatch.image.pullPolicy }}
  {{- if .Values.sidecar.native }}
  # Native sidecar: started before the model server, kept running, stopped after it.
  restartPolicy: Always
  {{- end }}
  args:
    - run
    - --config=/etc/driftwatch/config/config.yaml
    - --log-format={{ .Values.driftwatch.logFormat }}
    - --log-level={{ .Values.driftwatch.logLevel }}
  ports:
    - name: proxy
      containerPort: {{ .Values.driftwatch.ports.proxy }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.driftwatch.ports.admin }}
      protocol: TCP
  {{- with .Values.driftwatch.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # /healthz answers while the process serves; /readyz only once the model server accepts
  # connections. The startup probe uses /healthz: with a native sidecar the model server starts
  # after it, so /readyz could never pass first.
  startupProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml .Values.driftwatch.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml .Values.driftwatch.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    {{- toYaml .Values.driftwatch.probes.readiness | nindent 4 }}
  {{- with .Values.driftwatch.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.driftwatch.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: driftwatch-config
      mountPath: /etc/driftwatch/config
      readOnly: true
    - name: driftwatch-records
      mountPath: {{ .Values.driftwatch.volumes.records.mountPath }}
    - name: driftwatch-spool
      mountPath: {{ .Values.driftwatch.volumes.spool.mountPath }}
    {{- if .Values.driftwatch.adminToken.existingSecret }}
    - name: driftwatch-admin-token
      mountPath: {{ include "driftwatch.adminTokenDir" . }}
      readOnly: true
    {{- end }}
    {{- if .Values.driftwatch.tls.caSecret }}
    - name: driftwatch-tls
      mountPath: {{ .Values.driftwatch.tls.mountPath }}
      readOnly: true
    {{- end }}
    {{- if .Values.driftwatch.references.configMap }}
    - name: driftwatch-references
      mountPath: {{ .Values.driftwatch.references.mountPath }}
      readOnly: true
    {{- end }}
    {{- with .Values.driftwatch.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
