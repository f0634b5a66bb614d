{{/*
Names, labels and small decisions shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "headwater.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name of the release's resources: fullnameOverride, else the release name when it already contains
the chart name, else "<release>-<chart>". At most 63 characters (a DNS label).
*/}}
{{- define "headwater.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "headwater.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "name-version" of the chart, for the helm.sh/chart label. */}}
{{- define "headwater.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the operator pods; they never change over the life of a release. */}}
{{- define "headwater.selectorLabels" -}}
app.kubernetes.io/name: {{ include "headwater.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every resource the chart renders. */}}
{{- define "headwater.labels" -}}
helm.sh/chart: {{ include "headwater.chart" . }}
{{ include "headwater.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: headwater
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator's ServiceAccount name. */}}
{{- define "headwater.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "headwater.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image references: "repository:tag", the tag defaulting to the chart's appVersion. */}}
{{- define "headwater.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{- define "headwater.workerImage" -}}
{{- printf "%s:%s" .Values.worker.image.repository (default .Chart.AppVersion .Values.worker.image.tag) -}}
{{- end -}}

{{/* "true" when the operator watches every namespace (no watchNamespaces), else "". */}}
{{- define "headwater.clusterWide" -}}
{{- if not .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* "true" when the replicas coordinate through kopf peering (more than one replica), else "". */}}
{{- define "headwater.peered" -}}
{{- if gt (int .Values.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{/*
The namespaced rules of the operator: the same in the ClusterRole (cluster-wide) and in each Role
(watchNamespaces). Secrets are deliberately absent: workloads receive them by Secret reference.
ServiceAccounts: one per resource, created once; the garbage collector deletes them with their owner.
Roles and RoleBindings: a watching Connector's worker gets `get` and `patch` on that Connector's status
only; the operator may grant that without `escalate` or `bind` because it holds the permission itself.
Pass a dict with "peering" set to the plural of the kopf peering resource of this mode.
*/}}
{{- define "headwater.namespacedRules" -}}
- apiGroups: ["headwater.dev"]
  resources: ["wrappers", "connectors", "computetasks", "packages", "exportjobs"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["headwater.dev"]
  resources: ["wrappers/status", "connectors/status", "computetasks/status", "packages/status", "exportjobs/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["kopf.dev"]
  resources: [{{ .peering | quote }}]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/*
Cluster-scoped read access kopf needs in every mode: it discovers the resources it serves from the CRDs,
and it reads namespaces (an operator restricted to namespaces checks that they exist and follows them;
without this it retries for about two minutes at every start before carrying on).
*/}}
{{- define "headwater.discoveryRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/* The gateway's name, labels and image. */}}
{{- define "headwater.gatewayName" -}}
{{- printf "%s-gateway" (include "headwater.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "headwater.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "headwater.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "headwater.gatewayLabels" -}}
helm.sh/chart: {{ include "headwater.chart" . }}
{{ include "headwater.gatewaySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: headwater
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "headwater.gatewayImage" -}}
{{- printf "%s:%s" .Values.gateway.image.repository (default .Chart.AppVersion .Values.gateway.image.tag) -}}
{{- end -}}
