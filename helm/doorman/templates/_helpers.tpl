{{/* Chart name. */}}
{{- define "doorman.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified name: the release name when it contains the chart name (so release
"doorman" yields the same object names as deploy/), else release-chart. */}}
{{- define "doorman.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "doorman.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "doorman.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" $ "component" "controller"). */}}
{{- define "doorman.selectorLabels" -}}
app.kubernetes.io/name: {{ include "doorman.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "doorman.image" -}}
{{- printf "%s:%s" (required "image.repository is required" .Values.image.repository) (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "doorman.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* mTLS flags, the same on both binaries: files of the Secret mounted at /etc/doorman/tls
(the whole directory, never subPath, so that renewed Secrets reach the pod). */}}
{{- define "doorman.mtlsArgs" -}}
- --tls-cert=/etc/doorman/tls/tls.crt
- --tls-key=/etc/doorman/tls/tls.key
- --tls-ca=/etc/doorman/tls/ca.crt
{{- end -}}

{{/* "true" when the chart makes the mTLS Secrets itself: mTLS on and no Secret named. */}}
{{- define "doorman.mtlsGenerated" -}}
{{- $m := .Values.mtls -}}
{{- if and $m.enabled (not $m.secretName) (not $m.controllerSecretName) (not $m.dataplaneSecretName) -}}true{{- end -}}
{{- end -}}

{{/* The Secret a workload mounts; call with (dict "ctx" $ "name" .Values.mtls.controllerSecretName
"component" "controller"). Its own name, else secretName, else the generated one (none named). */}}
{{- define "doorman.mtlsSecret" -}}
{{- $m := .ctx.Values.mtls -}}
{{- if .name -}}
{{- .name -}}
{{- else if $m.secretName -}}
{{- $m.secretName -}}
{{- else if include "doorman.mtlsGenerated" .ctx -}}
{{- printf "%s-%s-mtls" (include "doorman.fullname" .ctx) .component -}}
{{- else -}}
{{- fail "mtls: name both controllerSecretName and dataplaneSecretName, or secretName, or none (the chart then generates a CA and both certificates); one generated side would not trust the other" -}}
{{- end -}}
{{- end -}}

{{/* The controller's rules on the namespaced kinds it watches and writes (a ClusterRole, or a
     Role in controller.watchNamespace). */}}
{{- define "doorman.controllerWatchRules" -}}
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch]
- apiGroups: [doorman.dev]
  resources: [loadbalancers]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [services/status]
  verbs: [patch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [patch]
- apiGroups: [doorman.dev]
  resources: [loadbalancers/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, get, patch]
{{- end -}}

{{/* A Go duration ("5s", "1m30s", "1.5h", "250ms") in seconds, as a decimal string; the schema
has already checked the syntax. Used to compare durations with terminationGracePeriodSeconds. */}}
{{- define "doorman.seconds" -}}
{{- $unit := dict "ns" 1e-9 "us" 1e-6 "µs" 1e-6 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" . -1 -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $total = addf $total (mulf (float64 $n) (index $unit (trimPrefix $n .))) -}}
{{- end -}}
{{- $total -}}
{{- end -}}
