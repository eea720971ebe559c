#!/usr/bin/env bash
# Check the Helm chart in charts/portcullis without a cluster. Runs helm
# lint --strict and helm template with each value file in
# charts/portcullis/ci/. Every rendered object is validated against the
# Kubernetes 1.33 schemas with unknown fields rejected
# (kubernetes-validate --strict), and the output goes through yamllint.
# Several replicas with in-memory sessions or with SQLite must fail to
# render with the chart's message. The Sentinel and Cluster URL forms must
# reach the Secret unchanged, and a rediss:// URL, which portcullis cannot
# use, must fail the values schema.
# Prints one line per check and ends with "N passed, N failed"; exits 1
# when any check failed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/chart-tools.sh

chart="charts/portcullis"
kube_version="1.33.0"
tools_dir="$repo_root/.run/tools"
helm="$tools_dir/bin/helm"
validate="$repo_root/.venv-k8s/bin/kubernetes-validate"
yamllint="$repo_root/.venv-k8s/bin/yamllint"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# With no kubeconfig, helm falls back to http://localhost:8080, which other
# local services may use. Point it at a closed port so nothing is reached.
printf '%s\n' 'apiVersion: v1' 'kind: Config' 'clusters:' '- name: offline' \
  '  cluster:' '    server: http://127.0.0.1:1' 'contexts:' '- name: offline' \
  '  context:' '    cluster: offline' 'current-context: offline' >"$work/kubeconfig"
export KUBECONFIG="$work/kubeconfig"
export HELM_CACHE_HOME="$tools_dir/helm/cache"
export HELM_CONFIG_HOME="$tools_dir/helm/config"
export HELM_DATA_HOME="$tools_dir/helm/data"

# Sequences written by Helm's toYaml are not indented under their key.
yamllint_config='{extends: relaxed, rules: {line-length: disable, indentation: {spaces: consistent, indent-sequences: whatever}}}'

passed=0
failed=0

pass() {
  echo "PASS $1"
  passed=$((passed + 1))
}

fail() {
  echo "FAIL $1"
  if [[ -n "${2:-}" ]]; then
    sed 's/^/    /' "$2" | head -n 20
  fi
  failed=$((failed + 1))
}

if "$helm" lint --strict "$chart" -f "$chart/ci/minimal-values.yaml" >"$work/lint.log" 2>&1; then
  pass "helm lint --strict"
else
  fail "helm lint --strict" "$work/lint.log"
fi

# Render each value file and validate the stream. Only the ServiceMonitor
# (a Prometheus Operator CRD) has no schema in kubernetes-validate, so a
# missing schema for any other kind is a failure.
for values in "$chart"/ci/*-values.yaml; do
  name="$(basename "$values" .yaml)"
  rendered="$work/$name.yaml"
  if ! "$helm" template portcullis "$chart" --namespace auth --kube-version "$kube_version" \
      -f "$values" >"$rendered" 2>"$work/$name.err"; then
    fail "helm template $name" "$work/$name.err"
    continue
  fi
  pass "helm template $name"

  "$validate" --strict -k "$kube_version" "$rendered" >"$work/$name.validate" 2>&1 && status=0 || status=$?
  missing="$(grep "Couldn't find schema" "$work/$name.validate" | grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1" || true)"
  if [[ "$status" -eq 0 && -z "$missing" ]]; then
    pass "kubernetes-validate $name"
  else
    fail "kubernetes-validate $name" "$work/$name.validate"
  fi

  if "$yamllint" -f parsable -d "$yamllint_config" "$rendered" >"$work/$name.yamllint" 2>&1 \
      && [[ ! -s "$work/$name.yamllint" ]]; then
    pass "yamllint $name"
  else
    fail "yamllint $name" "$work/$name.yamllint"
  fi
done

# expect_render_failure NAME MESSAGE-FRAGMENT HELM-ARGS...
expect_render_failure() {
  local name="$1" expected="$2"
  shift 2
  if "$helm" template portcullis "$chart" --kube-version "$kube_version" "$@" >/dev/null 2>"$work/reject.err"; then
    fail "$name: rendering succeeded, expected it to fail"
  elif grep -qF "$expected" "$work/reject.err"; then
    pass "$name"
  else
    fail "$name: failed without the expected message" "$work/reject.err"
  fi
}

expect_render_failure "reject 2 replicas with in-memory sessions" \
  "needs config.session.store: redis" \
  -f "$chart/ci/minimal-values.yaml" --set replicaCount=2
expect_render_failure "reject 2 replicas with SQLite" \
  "needs config.directory.backend: postgres" \
  -f "$chart/ci/minimal-values.yaml" --set replicaCount=2 \
  --set config.session.store=redis --set secret.redisUrl=redis://redis:6379
expect_render_failure "reject HPA with in-memory sessions" \
  "needs config.session.store: redis" \
  -f "$chart/ci/minimal-values.yaml" --set autoscaling.enabled=true
expect_render_failure "reject a rediss:// Redis URL" \
  "secret.redisUrl: Does not match pattern" \
  -f "$chart/ci/sentinel-values.yaml" --set secret.redisUrl=rediss://:pw@redis:6379

# expect_secret_url NAME URL HELM-ARGS...
# Renders with the given values and checks that the Secret's redis-url key
# is URL exactly.
expect_secret_url() {
  local name="$1" url="$2"
  shift 2
  if ! "$helm" template portcullis "$chart" --kube-version "$kube_version" "$@" >"$work/url.yaml" 2>"$work/url.err"; then
    fail "$name: rendering failed" "$work/url.err"
  elif grep -qxF "  redis-url: \"$url\"" "$work/url.yaml"; then
    pass "$name"
  else
    grep -n "redis-url" "$work/url.yaml" >"$work/url.found" || true
    fail "$name: the Secret's redis-url differs" "$work/url.found"
  fi
}

sentinel_url="$(sed -n 's/^  redisUrl: //p' "$chart/ci/sentinel-values.yaml")"
expect_secret_url "Sentinel URL reaches the Secret" "$sentinel_url" \
  -f "$chart/ci/sentinel-values.yaml"
# --set would split the URL at its commas, so it goes in a value file.
cluster_url="redis+cluster://:pw@redis-cluster-0.redis-cluster.redis.svc:6379,redis-cluster-1.redis-cluster.redis.svc:6379"
printf 'secret:\n  redisUrl: %s\n' "$cluster_url" >"$work/cluster-url.yaml"
expect_secret_url "Cluster URL reaches the Secret" "$cluster_url" \
  -f "$chart/ci/ha-postgres-values.yaml" -f "$work/cluster-url.yaml"

echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
