#!/usr/bin/env bash
# The main job end to end on embedded defaults: no servers, everything in .fed/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.fed/demo
rm -rf "$out"; mkdir -p "$out"
echo "== building fed" >&2
dotnet build src/Fed.Cli -c Release -v q -nologo >/dev/null
fed() { dotnet src/Fed.Cli/bin/Release/net10.0/fed.dll "$@"; }
wh="sqlite:$out/warehouse.db"

echo "== converting the sample partial models into the embedded warehouse" >&2
fed convert --model samples/breast_cancer/guest.json --model samples/breast_cancer/host.json --warehouse "$wh"
fed model list --warehouse "$wh"
echo "== done: warehouse in $out" >&2
