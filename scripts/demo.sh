#!/usr/bin/env bash
# `make demo`: the local control plane, the CRDs, the operator in the background, and one learner's
# week21 lab until Ready. `make demo-down` (this script with `down`) stops the operator and cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
LABENV=.venv/bin/labenv
CLUSTER=${LABENV_DEMO_CLUSTER:-labenv}
STATE=$(.venv/bin/python -c "from labenv.localcluster.cluster import LocalCluster as C; print(C('$CLUSTER').kubeconfig.parent)")
PIDFILE="$STATE/operator.pid"

stop_operator() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")" && echo "operator stopped"
  fi
  rm -f "$PIDFILE"
}

if [ "${1:-}" = down ]; then
  stop_operator
  $LABENV cluster down --name "$CLUSTER"
  exit 0
fi

echo "== 1/5 local control plane (built from Go modules on first use, cached in ~/.cache/labenv)"
$LABENV cluster up --name "$CLUSTER"
export KUBECONFIG="$STATE/kubeconfig"
KUBECTL=$(.venv/bin/python -c "from labenv.localcluster.cluster import LocalCluster as C; print(C('$CLUSTER').kubectl)")

echo "== 2/5 CRDs and the labenv namespace"
$LABENV install

echo "== 3/5 operator (log: $STATE/operator.log)"
stop_operator
nohup .venv/bin/python -m labenv.controller >"$STATE/operator.log" 2>&1 &
echo $! >"$PIDFILE"

echo "== 4/5 labenv start week21 --wait"
$LABENV start week21 --learner demo --wait --timeout 300

echo "== 5/5 kubectl get labsessions"
"$KUBECTL" get labsessions -n labenv -o wide
echo
echo "Try:  export KUBECONFIG=$KUBECONFIG"
echo "      $LABENV creds demo-week21     $LABENV status demo-week21     $KUBECTL get pods -n lab-demo-week21"
echo "Stop: make demo-down"
