{{/* Object name shared by the StatefulSet, Service, ServiceAccount, Role and RoleBinding. */}}
{{- define "vkube.fullname" -}}
{{- if gt (len .Release.Name) 46 -}}
{{- fail (printf "release name %q is longer than 46 characters (the StatefulSet vkube-NAME must stay within 52)" .Release.Name) -}}
{{- end -}}
vkube-{{ .Release.Name }}
{{- end -}}

{{- define "vkube.labels" -}}
app.kubernetes.io/name: vkube
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
vkube.dev/virtual-cluster: {{ .Release.Name }}
{{- end -}}

{{- define "vkube.selectorLabels" -}}
app.kubernetes.io/name: vkube
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vkube.kubeconfigServer" -}}
{{- if .Values.kubeconfigServer -}}
{{ .Values.kubeconfigServer }}
{{- else if eq .Values.exposure.type "Ingress" -}}
https://{{ .Values.exposure.ingress.host }}
{{- else -}}
https://{{ include "vkube.fullname" . }}.{{ .Release.Namespace }}.svc:{{ .Values.service.port }}
{{- end -}}
{{- end -}}
