#!/usr/bin/env bash
# Builds the demo's policy bundle (cli/demo/policy/backend-authz.tar.gz, unsigned: the demo
# signs it at start with a key it makes) from backend_authz.rego with the pinned opa, so
# `npm start` needs no opa. test/e2e/demo-policy.test.ts checks the committed bundle is what
# this script builds from the committed Rego.
set -euo pipefail
cd "$(dirname "$0")/.."
opa=$(scripts/install-opa.sh | tail -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
cp cli/demo/policy/backend_authz.rego "$work/src/"
(cd "$work" && "$opa" build -b -t wasm -e envoy/authz/allow --revision demo-1 -o bundle.tar.gz src)
cp "$work/bundle.tar.gz" cli/demo/policy/backend-authz.tar.gz
echo "cli/demo/policy/backend-authz.tar.gz"
