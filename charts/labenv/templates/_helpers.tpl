{{/* Names and labels shared by every template. */}}

{{- define "labenv.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride -}}
{{- else if contains "labenv" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-labenv" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "labenv.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (printf "%s-operator" (include "labenv.fullname" .)) -}}
{{- end -}}

{{- define "labenv.selectorLabels" -}}
app.kubernetes.io/name: labenv
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "labenv.commonLabels" -}}
app.kubernetes.io/name: labenv
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: labenv
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "labenv.labels" -}}
{{ include "labenv.selectorLabels" . }}
app.kubernetes.io/part-of: labenv
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "labenv.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The operator's Kubernetes user name: what RBAC bindings and the admission policy name. */}}
{{- define "labenv.operatorUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "labenv.serviceAccountName" .) -}}
{{- end -}}

{{/* Checks JSON schema cannot express; fail with the value's path. */}}
{{- define "labenv.validate" -}}
{{- if le (int .Values.operator.watchClientTimeout) (int .Values.operator.watchServerTimeout) -}}
{{- fail (printf "operator.watchClientTimeout (%v) must be larger than operator.watchServerTimeout (%v): the client would give up on every watch before the server closes it" .Values.operator.watchClientTimeout .Values.operator.watchServerTimeout) -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) -}}
{{- fail (printf "replicaCount (%v) > 1 needs peering.enabled=true: standalone replicas would all reconcile every session" .Values.replicaCount) -}}
{{- end -}}
{{- if and .Values.sessionsNamespace.create (eq .Values.sessionsNamespace.name .Release.Namespace) -}}
{{- fail (printf "sessionsNamespace.name (%s) is the release namespace: give LabSessions their own namespace, or set sessionsNamespace.create=false" .Values.sessionsNamespace.name) -}}
{{- end -}}
{{- if hasPrefix "lab-" .Values.sessionsNamespace.name -}}
{{- fail (printf "sessionsNamespace.name (%s) must not start with lab-: that prefix belongs to lab namespaces, which the operator deletes when their session is gone" .Values.sessionsNamespace.name) -}}
{{- end -}}
{{- end -}}
