#!/usr/bin/env bash
# Fetches real projects' CustomResourceDefinitions (Argo CD, cert-manager,
# prometheus-operator, Gateway API, Istio, Cluster API, Linkerd, External
# Secrets, ...) and sample objects of them, for the e2e test that installs
# them (e2e/tests/e2e/crds_real.rs). They ship in the test data of the `kopium`
# crate; the pinned .crate is downloaded from crates.io's static host,
# checked against its SHA-256 and unpacked into .tools/real-crds/. Nothing
# is committed. Idempotent: a second run with the files present does nothing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME=kopium-0.24.1
SHA256=15cc3a0ffd281ea6e36696c9a2d3a6a7a9e6ea1cf0d35b5dab54c021dade6fc9
DEST="$REPO/.tools/real-crds/$NAME"

if [ -f "$DEST/.complete" ]; then
    echo "fetch-test-crds: $NAME already present"
    exit 0
fi
command -v curl >/dev/null 2>&1 || { echo "fetch-test-crds: curl is required" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-test-crds: downloading $NAME.crate"
curl -fsSL --retry 3 -o "$tmp/$NAME.crate" "https://static.crates.io/crates/kopium/$NAME.crate"
echo "$SHA256  $tmp/$NAME.crate" | sha256sum -c --quiet -
tar -xzf "$tmp/$NAME.crate" -C "$tmp" "$NAME/tests"
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
mv "$tmp/$NAME/tests" "$DEST"
touch "$DEST/.complete"
echo "fetch-test-crds: $(grep -rlE 'kind: *"?CustomResourceDefinition' "$DEST" | wc -l) CRD files in $DEST"
