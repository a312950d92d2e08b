#!/usr/bin/env bash
# Installs the OPA that Palisade pins (OPA_VERSION in policies/opa-binary.ts, the one source
# of truth) into the tool cache, where policies/opa-binary.ts findOpa() looks for it:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/palisade/opa-<version>/opa
# It is built with `go install` from the Go module proxy (no release download). Idempotent:
# does nothing when that binary exists and reports the pinned version. Prints the path.
# Only `palisade policy build|test` and the tests need opa; sidecars evaluate the wasm.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n "s/^export const OPA_VERSION = '\(v[0-9][0-9.]*\)';$/\1/p" policies/opa-binary.ts)
if [ -z "$version" ]; then
  echo "install-opa: could not read OPA_VERSION from policies/opa-binary.ts" >&2
  exit 1
fi

dir="${XDG_CACHE_HOME:-$HOME/.cache}/palisade/opa-$version"
bin="$dir/opa"

if [ -x "$bin" ] && [ "$("$bin" version 2>/dev/null | sed -n 's/^Version: //p')" = "${version#v}" ]; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-opa: 'go' is not on PATH: install Go (https://go.dev/dl/, or apt-get install golang-go) to build OPA $version, or set PALISADE_OPA to an existing opa binary" >&2
  exit 1
fi

mkdir -p "$dir"
echo "install-opa: building OPA $version with $(go version) into $dir" >&2
# Outside any module: -mod=mod keeps a GOFLAGS=-mod=vendor from the caller out of the way.
(cd "$dir" && GOBIN="$dir" GOFLAGS=-mod=mod go install "github.com/open-policy-agent/opa@$version")

got=$("$bin" version | sed -n 's/^Version: //p')
if [ "$got" != "${version#v}" ]; then
  echo "install-opa: $bin reports version $got, expected ${version#v}" >&2
  exit 1
fi
echo "$bin"
