#!/usr/bin/env bash
# Deploy (install or upgrade) the Interloper control plane from a kustomize overlay, with the
# database migrations as a pre-install/pre-upgrade step:
#
#   deploy/k8s/deploy.sh deploy/k8s/overlays/production [--timeout SECONDS]
#
# 1. delete the previous migrations Job (a Job's template cannot change in place);
# 2. apply the objects labelled interloper.dev/stage=pre: namespace, ConfigMaps, Secrets,
#    NetworkPolicies, NATS, the in-cluster PostgreSQL if the overlay has it, and the Job;
# 3. wait for the Job (each service's `<service> migrate`); stop here if it fails;
# 4. apply everything (Deployments roll out onto the migrated databases) and wait for the rollouts.
#
# KUBECTL (default: kubectl) and KUBECTL_ARGS (e.g. --context prod) select the cluster;
# DEPLOY_POLL_SECONDS (default 5) is how often the Job is looked at.
set -euo pipefail

usage() { echo "usage: $0 OVERLAY_DIR [--timeout SECONDS]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
overlay=$1
shift
timeout=900
while [[ $# -gt 0 ]]; do
  case $1 in
    --timeout) timeout=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
[[ -f $overlay/kustomization.yaml ]] || { echo "$overlay: no kustomization.yaml" >&2; exit 2; }

read -r -a kubectl <<<"${KUBECTL:-kubectl} ${KUBECTL_ARGS:-}"
namespace=$(sed -n 's/^namespace:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$overlay/kustomization.yaml" | head -n1)
[[ -n $namespace ]] || { echo "$overlay/kustomization.yaml sets no namespace" >&2; exit 2; }
job=interloper-migrate

echo "==> deleting the previous migrations Job (if any) in namespace $namespace"
"${kubectl[@]}" -n "$namespace" delete job "$job" --ignore-not-found --wait=true

echo "==> applying the pre-install objects (configuration, secrets, policies, NATS, PostgreSQL, migrations Job)"
"${kubectl[@]}" apply -k "$overlay" --selector interloper.dev/stage=pre

echo "==> waiting for the migrations (timeout ${timeout}s)"
deadline=$((SECONDS + timeout))
state=""
while :; do
  state=$("${kubectl[@]}" -n "$namespace" get job "$job" -o jsonpath='{.status.conditions[?(@.status=="True")].type}' || true)
  case " $state " in
    *" Complete "*) break ;;
    *" Failed "*) state=failed; break ;;
  esac
  if ((SECONDS >= deadline)); then state=timeout; break; fi
  sleep "${DEPLOY_POLL_SECONDS:-5}"
done
if [[ $state == failed || $state == timeout ]]; then
  echo "!! migrations ${state}: nothing else was changed. Logs:" >&2
  "${kubectl[@]}" -n "$namespace" logs "job/$job" --all-containers --prefix --tail=100 >&2 || true
  exit 1
fi

echo "==> applying everything"
"${kubectl[@]}" apply -k "$overlay"

echo "==> waiting for the rollouts"
"${kubectl[@]}" -n "$namespace" rollout status deployment -l app.kubernetes.io/part-of=interloper --timeout="${timeout}s"
"${kubectl[@]}" -n "$namespace" rollout status statefulset -l app.kubernetes.io/part-of=interloper --timeout="${timeout}s"
echo "==> done"
