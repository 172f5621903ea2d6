#!/usr/bin/env bash
# The main job end to end on embedded defaults, everything under .fed/demo:
#   0. train a federated model (PSI + Paillier, guest and host over HTTP/2 + mTLS on loopback)
#   1. each party converts its partial model into its own embedded warehouse
#   2. each party scores its own features; only partial scores leave it
#   3. the initiator combines them into predictions
#   4. the reference path gives the same predictions
#   5. predictions into Redis, one looked up            (when redis-server is installed)
#   6. a short streaming run: Kafka -> parties -> initiator -> Redis   (when scripts/install-deps.sh has run)
# FED_DEMO_FAST=1 skips training and uses the shipped sample models.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=.fed/demo
rm -rf "$out"; mkdir -p "$out"
step() { echo "== $*" >&2; }
step "building fed"
dotnet build src/Fed.Cli -c Release -v q -nologo >/dev/null
fed() { dotnet "$root/src/Fed.Cli/bin/Release/net10.0/fed.dll" "$@"; }
# Background workers run dotnet directly so that $! is the worker itself (cleanup stops it with SIGTERM).
fed_bg() { local log=$1 pid=$2; shift 2; dotnet "$root/src/Fed.Cli/bin/Release/net10.0/fed.dll" "$@" 2>"$log" & echo $! > "$pid"; }
data=samples/breast_cancer dt=2026-11-22

if [ "${FED_DEMO_FAST:-0}" = 1 ]; then
  model=breast_cancer_lr models=$data gm=$data/guest.json hm=$data/host.json
else
  step "0. train: guest (labels) and host align ids privately and train with Paillier encryption"
  model=breast_cancer_demo models=$out/trained
  fed train local --kind logistic --party guest=$data/guest.csv --party host=$data/host.csv --out $models \
    --key-bits 1024 --insecure-test-key-bits --max-iter 8 --model-id $model >/dev/null
  ls $models/*.model.json >&2
  gm=$models/guest.model.json hm=$models/host.model.json
fi

step "1. each party converts its own partial model into its own warehouse"
fed convert --model $gm --warehouse sqlite:$out/guest.db
fed convert --model $hm --warehouse sqlite:$out/host.db

step "2. each party scores its own features (embedded engine); only partial scores leave it"
fed predict batch --party guest --model-id $model --features $data/guest.csv --dt $dt --warehouse sqlite:$out/guest.db --out $out/scores
fed predict batch --party host --model-id $model --features $data/host.csv --dt $dt --warehouse sqlite:$out/host.db --out $out/scores

step "3. the initiator combines the partial scores into predictions (fed_predictions in its warehouse)"
fed predict combine --model-id $model --dt $dt --input $out/scores --warehouse sqlite:$out/guest.db

step "4. the reference path (fed predict local) gives the same predictions"
fed predict local --models $models --party guest=$data/guest.csv --party host=$data/host.csv --out $out/local.csv
head -4 $out/local.csv
sample=$(sed -n 2p $out/local.csv | cut -d, -f1)

cleanup() {
  for p in "$out"/stream-*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  for p in "$out"/stream-*.pid; do [ -f "$p" ] && while kill -0 "$(cat "$p")" 2>/dev/null; do sleep 0.1; done; rm -f "$p"; done
  [ -f "$out/redis.pid" ] && kill "$(cat "$out/redis.pid")" 2>/dev/null || true
  [ -f .run/demo-services ] && { bash scripts/services.sh stop >/dev/null 2>&1 || true; rm -f .run/demo-services; }
  return 0 # the demo's own exit status stands (a false test above must not turn it into 1)
}
trap cleanup EXIT

if command -v redis-server >/dev/null; then
  step "5. load the predictions into Redis and look one up"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --daemonize yes --dir "$root/$out" --pidfile "$root/$out/redis.pid" >/dev/null
  sleep 0.3
  fed predict load-redis --redis 127.0.0.1:$port --model-id $model --dt $dt --warehouse sqlite:$out/guest.db
  fed predict lookup --redis 127.0.0.1:$port --model-id $model --sample-id "$sample"
else
  step "5. skipped: redis-server is not installed (scripts/install-deps.sh installs it)"
fi

if [ -d .deps/kafka/libs ] && command -v java >/dev/null && command -v redis-server >/dev/null && [ ! -f .run/env.sh ]; then
  step "6. streaming: each party turns Kafka feature events into partial scores, the initiator combines into Redis"
  touch .run/demo-services 2>/dev/null || { mkdir -p .run; touch .run/demo-services; }
  bash scripts/services.sh start kafka >/dev/null
  source .run/env.sh
  redis-cli -p "$port" flushall >/dev/null   # so that only streamed predictions are counted below
  for t in fed.features.guest fed.features.host fed.partials fed.scores fed.status fed.deadletter; do
    bash scripts/services.sh create-topic $t 2 >/dev/null
  done
  kafka='"bootstrap.servers": "'$FED_TEST_KAFKA'", "api.version.request": "false", "broker.version.fallback": "0.9.0"'
  for p in guest host; do
    # Each party signs its partial scores with its own key; the initiator holds both (docs/streaming.md).
    (umask 077; head -c 32 /dev/urandom | base64 > $out/stream-$p.key)
    echo '{"party": "'$p'", "warehouse": "sqlite:'$out/$p.db'", "group_id": "demo-'$p'", "input_topic": "fed.features.'$p'",
           "dead_letter_topic": "fed.deadletter", "signing_key": "file:'$out/stream-$p.key'",
           "kafka": {'"$kafka"'}, "consumer": {"session.timeout.ms": "6000"}, "metrics_interval_ms": 0}' > $out/stream-$p.json
    fed_bg $out/stream-$p.log $out/stream-$p.pid stream party --config $out/stream-$p.json
  done
  echo '{"warehouse": "sqlite:'$out/guest.db'", "group_id": "demo-initiator", "redis": "127.0.0.1:'$port'", "dead_letter_topic": "fed.deadletter",
         "party_keys": {"guest": "file:'$out/stream-guest.key'", "host": "file:'$out/stream-host.key'"},
         "kafka": {'"$kafka"'}, "consumer": {"session.timeout.ms": "6000"}, "window_ms": 3000, "metrics_interval_ms": 0}' > $out/stream-initiator.json
  fed_bg $out/stream-initiator.log $out/stream-initiator.pid stream initiator --config $out/stream-initiator.json
  for p in guest host; do
    fed stream replay --csv $data/$p.csv --party $p --drop y --model-id $model --brokers $FED_TEST_KAFKA --event-prefix demo- \
      --kafka api.version.request=false --kafka broker.version.fallback=0.9.0 >/dev/null 2>&1
  done
  for i in $(seq 1 60); do
    n=$(redis-cli -p "$port" --scan --pattern "fed:pred:$model:v1:*" | grep -c . || true)
    [ "$n" -ge 500 ] && break; sleep 0.5
  done
  echo "streaming: $n predictions in Redis; incomplete records: $(redis-cli -p "$port" --scan --pattern "fed:incomplete:$model:*" | grep -c . || true)" >&2
  redis-cli -p "$port" get "fed:pred:$model:v1:$sample"
else
  step "6. skipped: streaming needs the Kafka broker that scripts/install-deps.sh fetches (and no test run in progress)"
fi
step "done: everything is in $out"
