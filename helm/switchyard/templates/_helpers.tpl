{{/* Names, labels, the gateway's config and the checks every render runs. */}}

{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name when it already holds the chart name. */}}
{{- define "switchyard.fullname" -}}
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

{{/* Labels of every object; call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "switchyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "switchyard.simulatorImage" -}}
{{- with .Values.demo.image }}
{{- printf "%s:%s" .repository (.tag | default $.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The pools the gateway fronts, as a YAML list: vllm.pools, or with demo.enabled one
simulated pool per demo model, its simulator flags as args (so that the endpoint helpers read
them as they read vllm serve flags) and "simulated: true". */}}
{{- define "switchyard.pools" -}}
{{- if .Values.demo.enabled }}
{{- $pools := list }}
{{- range $i, $m := .Values.demo.models }}
{{- $args := list "--model" $m.name "--preset" $m.preset "--seed" (toString $i) }}
{{- $pools = append $pools (dict "name" $m.pool "model" $m.name "servedModelName" $m.name "replicas" $.Values.demo.replicas "args" $args "simulated" true) }}
{{- end }}
{{- toYaml $pools }}
{{- else }}
{{- toYaml (.Values.vllm.pools | default list) }}
{{- end }}
{{- end }}

{{/* The models the values list with their prices: gateway.models, or the demo's models. */}}
{{- define "switchyard.listedModels" -}}
{{- if .Values.demo.enabled }}
{{- $models := list }}
{{- range .Values.demo.models }}
{{- $models = append $models (omit . "pool" "preset") }}
{{- end }}
{{- toYaml $models }}
{{- else }}
{{- toYaml (.Values.gateway.models | default list) }}
{{- end }}
{{- end }}

{{/* The gateway's routers: gateway.config.routers, or with the demo and none listed, the
demo's routed model over its models. */}}
{{- define "switchyard.routers" -}}
{{- $routers := .Values.gateway.config.routers | default list }}
{{- if and .Values.demo.enabled (not $routers) }}
{{- $router := deepCopy .Values.demo.router }}
{{- $_ := set $router "candidates" (list) }}
{{- range .Values.demo.models }}{{ $_ := set $router "candidates" (append $router.candidates .name) }}{{ end }}
{{- $_ := set $router "default" true }}
{{- $routers = list $router }}
{{- end }}
{{- toYaml $routers }}
{{- end }}

{{/* Name of a pool's Deployment and Service; call with (dict "ctx" $ "pool" $pool). */}}
{{- define "switchyard.vllmName" -}}
{{- $name := printf "%s-vllm-%s" (include "switchyard.fullname" .ctx) .pool.name }}
{{- if gt (len $name) 63 }}
{{- fail (printf "vllm.pools: pool %q makes the name %q longer than 63 characters; shorten the pool name or set fullnameOverride" .pool.name $name) }}
{{- end }}
{{- $name }}
{{- end }}

{{/* The model name the gateway knows a pool by. */}}
{{- define "switchyard.servedModel" -}}
{{- .servedModelName | default .model }}
{{- end }}

{{/* Whether a pool serves LoRA adapters ("true" or ""): --enable-lora among its args. */}}
{{- define "switchyard.poolServesLora" -}}
{{- if has "--enable-lora" (.args | default list) }}true{{ end }}
{{- end }}

{{/* Where a pool's adapter sources come from: its own `adapters`, else vllm.adapters; ""
when the pool serves no adapters or no source is set. (dict "ctx" $ "pool" pool) */}}
{{- define "switchyard.adapterSource" -}}
{{- if include "switchyard.poolServesLora" .pool }}
{{- $src := .pool.adapters | default .ctx.Values.vllm.adapters | default dict }}
{{- if or $src.existingClaim $src.hostPath $src.init }}
{{- toYaml $src }}
{{- end }}
{{- end }}
{{- end }}

{{/* Value of a vllm serve flag in a pool's args ("" if absent); (dict "pool" p "flag" f). */}}
{{- define "switchyard.poolArg" -}}
{{- $flag := .flag }}
{{- $prev := "" }}
{{- $found := "" }}
{{- range .pool.args }}
{{- $arg := toString . }}
{{- if eq $prev $flag }}{{ $found = $arg }}{{ end }}
{{- if hasPrefix (printf "%s=" $flag) $arg }}{{ $found = trimPrefix (printf "%s=" $flag) $arg }}{{ end }}
{{- $prev = $arg }}
{{- end }}
{{- $found }}
{{- end }}

{{/* The in-chart or external Redis URL ("" when the URL comes from a Secret or not at all). */}}
{{- define "switchyard.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s-redis.%s.svc:6379/0" (include "switchyard.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.redis.external.url }}
{{- end }}
{{- end }}

{{/* The headless Service of a pool (its pods, one DNS record each); (dict "ctx" $ "pool" pool). */}}
{{- define "switchyard.vllmPodsName" -}}
{{- printf "%s-pods" (include "switchyard.vllmName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Endpoints of a model served by pools, one entry per pool; (dict "ctx" $ "model" name).
gateway.discovery.mode "dns" (default) or "kubernetes": the entry discovers the pool's pods
through its headless Service, and each pod is an endpoint of its own, so weight and
max_num_seqs are per pod (the pool's weight, its share of the model, split over its
replicas). "service": the pool's ClusterIP Service as one endpoint (kube-proxy picks pods). */}}
{{- define "switchyard.poolEndpoints" -}}
{{- $eps := list }}
{{- $d := .ctx.Values.gateway.discovery }}
{{- $ns := .ctx.Release.Namespace }}
{{- range include "switchyard.pools" .ctx | fromYamlArray }}
{{- if eq (include "switchyard.servedModel" .) $.model }}
{{- $replicas := int (.replicas | default 1) }}
{{- $weight := hasKey . "weight" | ternary .weight $replicas }}
{{- $seqs := include "switchyard.poolArg" (dict "pool" . "flag" "--max-num-seqs") }}
{{- $ep := dict }}
{{- if eq $d.mode "service" }}
{{- $svc := include "switchyard.vllmName" (dict "ctx" $.ctx "pool" .) }}
{{- $_ := set $ep "url" (printf "http://%s.%s.svc:8000/v1" $svc $ns) }}
{{- $_ := set $ep "weight" $weight }}
{{- if $seqs }}{{ $_ := set $ep "max_num_seqs" (mul (atoi $seqs) $replicas) }}{{ end }}
{{- else }}
{{- $pods := include "switchyard.vllmPodsName" (dict "ctx" $.ctx "pool" .) }}
{{- $src := dict "kind" $d.mode "port" 8000 "interval_s" $d.intervalSeconds }}
{{- if eq $d.mode "kubernetes" }}
{{- $_ := set $src "name" $pods }}
{{- $_ := set $src "namespace" $ns }}
{{- else }}
{{- $_ := set $src "name" (printf "%s.%s.svc.%s." $pods $ns $d.clusterDomain) }}
{{- end }}
{{- $_ := set $ep "discover" $src }}
{{- $_ := set $ep "weight" (divf $weight $replicas) }}
{{- if $seqs }}{{ $_ := set $ep "max_num_seqs" (atoi $seqs) }}{{ end }}
{{- end }}
{{- $eps = append $eps $ep }}
{{- end }}
{{- end }}
{{- toYaml $eps }}
{{- end }}

{{/* The gateway's models: gateway.models or the demo's (plus pool endpoints), then
pool-served models they do not list, priced with gateway.selfHostedPrices. */}}
{{- define "switchyard.models" -}}
{{- $models := list }}
{{- $listed := list }}
{{- range include "switchyard.listedModels" . | fromYamlArray }}
{{- $m := deepCopy . }}
{{- /* A LoRA adapter (adapter: {base, name, source}) runs on its base model's replicas. */}}
{{- if not .adapter }}
{{- $pooled := include "switchyard.poolEndpoints" (dict "ctx" $ "model" .name) | fromYamlArray }}
{{- $eps := concat (.endpoints | default list) $pooled }}
{{- if not $eps }}
{{- fail (printf "gateway.models: %q has no endpoints and no vllm pool serves it (servedModelName)" .name) }}
{{- end }}
{{- $_ := set $m "endpoints" $eps }}
{{- end }}
{{- $models = append $models $m }}
{{- $listed = append $listed .name }}
{{- end }}
{{- range include "switchyard.pools" . | fromYamlArray }}
{{- $name := include "switchyard.servedModel" . }}
{{- if not (has $name $listed) }}
{{- $m := deepCopy $.Values.gateway.selfHostedPrices }}
{{- $_ := set $m "name" $name }}
{{- $len := include "switchyard.poolArg" (dict "pool" . "flag" "--max-model-len") }}
{{- if $len }}{{ $_ := set $m "max_context" (atoi $len) }}{{ end }}
{{- $_ := set $m "endpoints" (include "switchyard.poolEndpoints" (dict "ctx" $ "model" $name) | fromYamlArray) }}
{{- $models = append $models $m }}
{{- $listed = append $listed $name }}
{{- end }}
{{- end }}
{{- toYaml $models }}
{{- end }}

{{/* The gateway's config file (switchyard/gateway/settings.py): values' config plus what the chart knows. */}}
{{- define "switchyard.gatewayConfig" -}}
{{- $cfg := deepCopy (.Values.gateway.config | default (dict)) }}
{{- $server := deepCopy ($cfg.server | default (dict)) }}
{{- $_ := set $server "host" "0.0.0.0" }}
{{- $_ := set $server "port" (int .Values.gateway.port) }}
{{- $_ := set $cfg "server" $server }}
{{- $redis := include "switchyard.redisUrl" . }}
{{- if $redis }}
{{- $state := deepCopy ($cfg.state | default (dict)) }}
{{- $_ := set $state "redis_url" $redis }}
{{- $_ := set $cfg "state" $state }}
{{- end }}
{{- $_ := set $cfg "models" (include "switchyard.models" . | fromYamlArray) }}
{{- $routers := include "switchyard.routers" . | fromYamlArray }}
{{- if $routers }}{{ $_ := set $cfg "routers" $routers }}{{ end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Checks the schema cannot express; each failure says what to set. */}}
{{- define "switchyard.validate" -}}
{{- $v := .Values }}
{{- if hasKey ($v.gateway.config | default (dict)) "models" }}
{{- fail "gateway.config.models: list models under gateway.models (the chart adds the pools' endpoints)" }}
{{- end }}
{{- if and $v.demo.enabled (or $v.vllm.pools $v.gateway.models) }}
{{- fail "demo.enabled installs simulated pools in place of vllm.pools and gateway.models: set demo.enabled=false to install yours (switchyard plan's helm-values.yaml does)" }}
{{- end }}
{{- if and $v.demo.enabled (not $v.demo.models) }}
{{- fail "demo.models: the demo needs at least one model (or set demo.enabled=false)" }}
{{- end }}
{{- if and (not $v.demo.enabled) (not $v.vllm.pools) (not $v.gateway.models) }}
{{- fail "no models: set vllm.pools (switchyard plan writes them: -f DIR/helm-values.yaml) or gateway.models, or demo.enabled=true for the simulated demo" }}
{{- end }}
{{- $demoPools := list }}
{{- range $v.demo.models }}
{{- if has .pool $demoPools }}
{{- fail (printf "demo.models: the pool %q is used twice" .pool) }}
{{- end }}
{{- $demoPools = append $demoPools .pool }}
{{- end }}
{{- $names := list }}
{{- range $i, $p := $v.vllm.pools }}
{{- if not $p.model }}
{{- fail (printf "vllm.pools[%d] (%s): model is required (the Hugging Face repo vllm serves)" $i ($p.name | default "unnamed")) }}
{{- end }}
{{- if has $p.name $names }}
{{- fail (printf "vllm.pools: the name %q is used twice" $p.name) }}
{{- end }}
{{- $names = append $names $p.name }}
{{- range $p.args }}
{{- if or (eq (toString .) "--port") (hasPrefix "--port=" (toString .)) }}
{{- fail (printf "vllm.pools[%d].args: --port is the chart's (8000); remove it" $i) }}
{{- end }}
{{- end }}
{{- end }}
{{- include "switchyard.validateAdapters" . }}
{{- $replicas := int $v.gateway.replicas }}
{{- if $v.gateway.autoscaling.enabled }}{{ $replicas = int $v.gateway.autoscaling.maxReplicas }}{{ end }}
{{- $shared := or $v.redis.enabled $v.redis.external.url $v.redis.external.urlSecret.name }}
{{- if and (gt $replicas 1) (include "switchyard.routers" . | fromYamlArray) (not $shared) }}
{{- fail "gateway: several replicas with routers would each learn alone: set redis.enabled=true or redis.external.url (or redis.external.urlSecret)" }}
{{- end }}
{{- if and $v.redis.enabled (or $v.redis.external.url $v.redis.external.urlSecret.name) }}
{{- fail "redis: set either redis.enabled (in-chart Redis) or redis.external, not both" }}
{{- end }}
{{- if and ($v.gateway.config.auth | default (dict)).enabled (not $v.gateway.apiKeys.existingSecret) }}
{{- fail "gateway.config.auth.enabled needs gateway.apiKeys.existingSecret: a Secret holding SWITCHYARD_KEY_SECRET and the keys' key_env variables" }}
{{- end }}
{{- end }}

{{/* LoRA adapters: one source per adapter volume; an adapter model's base is a served model. */}}
{{- define "switchyard.validateAdapters" -}}
{{- $v := .Values }}
{{- $sources := list (dict "where" "vllm.adapters" "src" $v.vllm.adapters) }}
{{- range $i, $p := $v.vllm.pools }}
{{- with $p.adapters }}{{ $sources = append $sources (dict "where" (printf "vllm.pools[%d].adapters" $i) "src" .) }}{{ end }}
{{- end }}
{{- range $sources }}
{{- $src := .src | default dict }}
{{- $n := 0 }}
{{- range $key := list "existingClaim" "hostPath" "init" }}{{ if index $src $key }}{{ $n = add1 $n }}{{ end }}{{ end }}
{{- if gt $n 1 }}
{{- fail (printf "%s: set one of existingClaim, hostPath or init (an emptyDir it fills), not several" .where) }}
{{- end }}
{{- if and $src.init (not (get $src.init "image")) }}
{{- fail (printf "%s.init: needs an image (and a command that writes the adapters under mountPath)" .where) }}
{{- end }}
{{- end }}
{{- range $i, $p := $v.vllm.pools }}
{{- $src := $p.adapters | default $v.vllm.adapters | default dict }}
{{- $mount := printf "%s/" (trimSuffix "/" ($src.mountPath | default "/adapters")) }}
{{- if and (include "switchyard.poolServesLora" $p) (not (include "switchyard.adapterSource" (dict "ctx" $ "pool" $p))) }}
{{- $inModules := false }}
{{- range $p.args }}
{{- $arg := toString . }}
{{- if hasPrefix "--" $arg }}{{ $inModules = eq $arg "--lora-modules" }}
{{- else if and $inModules (hasPrefix $mount (last (splitList "=" $arg))) }}
{{- fail (printf "vllm.pools[%d].args: --lora-modules %s is under %s, but no adapter source is mounted there: set vllm.adapters (or the pool's adapters) existingClaim, hostPath or init" $i $arg $mount) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $served := list }}
{{- range include "switchyard.pools" . | fromYamlArray }}{{ $served = append $served (include "switchyard.servedModel" .) }}{{ end }}
{{- range $v.gateway.models }}{{ if not .adapter }}{{ $served = append $served .name }}{{ end }}{{ end }}
{{- range $i, $m := $v.gateway.models }}
{{- if and $m.adapter (not (has ($m.adapter.base | default "") $served)) }}
{{- fail (printf "gateway.models[%d].adapter.base: %q is not a model of a vllm pool (servedModelName) or of gateway.models" $i ($m.adapter.base | default "")) }}
{{- end }}
{{- end }}
{{- end }}
