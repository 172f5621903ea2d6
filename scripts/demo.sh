#!/usr/bin/env bash
# The main job end to end on embedded defaults: two parties, each with its own embedded warehouse, score their own
# features; the initiator (guest) combines the partial scores. With redis-server installed, the predictions are also
# loaded into a throwaway Redis and one is looked up. Everything lands in .fed/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.fed/demo
rm -rf "$out"; mkdir -p "$out"
echo "== building fed" >&2
dotnet build src/Fed.Cli -c Release -v q -nologo >/dev/null
fed() { dotnet src/Fed.Cli/bin/Release/net10.0/fed.dll "$@"; }
model=breast_cancer_lr dt=2026-11-22
data=samples/breast_cancer

echo "== 1. each party converts its own partial model into its own warehouse" >&2
fed convert --model $data/guest.json --warehouse sqlite:$out/guest.db
fed convert --model $data/host.json --warehouse sqlite:$out/host.db

echo "== 2. each party scores its own features (embedded engine); only partial scores leave it" >&2
fed predict batch --party guest --model-id $model --features $data/guest.csv --dt $dt --warehouse sqlite:$out/guest.db --out $out/scores
fed predict batch --party host --model-id $model --features $data/host.csv --dt $dt --warehouse sqlite:$out/host.db --out $out/scores

echo "== 3. the initiator combines the partial scores into predictions (fed_predictions in its warehouse)" >&2
fed predict combine --model-id $model --dt $dt --input $out/scores --warehouse sqlite:$out/guest.db

echo "== 4. the reference path (fed predict local) gives the same predictions" >&2
fed predict local --models $data --party guest=$data/guest.csv --party host=$data/host.csv --out $out/local.csv
head -4 $out/local.csv

if command -v redis-server >/dev/null; then
  echo "== 5. load the predictions into Redis and look one up" >&2
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --daemonize yes --dir "$PWD/$out" --pidfile "$PWD/$out/redis.pid" >/dev/null
  trap 'kill "$(cat "$PWD/'$out'/redis.pid")" 2>/dev/null || true' EXIT
  sleep 0.3
  fed predict load-redis --redis 127.0.0.1:$port --model-id $model --dt $dt --warehouse sqlite:$out/guest.db
  id=$(sed -n 2p $out/local.csv | cut -d, -f1)
  fed predict lookup --redis 127.0.0.1:$port --model-id $model --sample-id "$id"
else
  echo "== 5. skipped: redis-server is not installed (scripts/install-deps.sh installs it)" >&2
fi
echo "== done: everything is in $out" >&2
