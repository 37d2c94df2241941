//! Running the real `helm` binary (v3.8+ or v4) for `vkube create`/`delete`.

use anyhow::{Result, bail};
use std::path::PathBuf;
use std::process::Stdio;

/// Locates helm: `$HELM` if set (it must exist), else `helm` on `PATH`.
/// Errors say how to install it.
pub fn find() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HELM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "HELM is {} but no such file exists: install helm v3.8+ or v4, or point HELM at it",
            p.display()
        );
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("helm");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "helm not found: install helm v3.8+ or v4 (https://helm.sh/docs/intro/install/), or set HELM"
    )
}

/// Runs `helm ARGS` (with `--kube-context CONTEXT` when given), returning
/// its stdout. Errors: helm missing, or helm failed (its stderr included).
pub async fn run(args: &[String], kube_context: Option<&str>) -> Result<String> {
    let bin = find()?;
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(args).stdin(Stdio::null());
    if let Some(ctx) = kube_context {
        cmd.arg("--kube-context").arg(ctx);
    }
    let out = cmd.output().await?;
    if !out.status.success() {
        bail!(
            "`helm {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
