//! Shared helpers: run the real `vkube apiserver` binary as a child process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `vkube apiserver` child process.
pub struct ApiserverProcess {
    pub child: Child,
    pub url: String,
    pub kubeconfig: PathBuf,
}

/// Starts `vkube apiserver --data-dir DIR --listen 127.0.0.1:0` and waits for
/// its "listening on" line.
pub async fn start_apiserver(binary: &Path, data_dir: &Path) -> ApiserverProcess {
    start_apiserver_with(binary, data_dir, &[]).await
}

/// Like [`start_apiserver`], with `extra` arguments after the others.
pub async fn start_apiserver_with(
    binary: &Path,
    data_dir: &Path,
    extra: &[&str],
) -> ApiserverProcess {
    let mut child = Command::new(binary)
        .args(["apiserver", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env("VKUBE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning vkube apiserver");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .expect("apiserver did not report its address in time")
            .expect("reading stderr")
            .expect("apiserver exited before listening");
        if let Some(rest) = line.strip_prefix("vkube apiserver listening on ") {
            break rest.trim().to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    ApiserverProcess {
        child,
        url,
        kubeconfig: data_dir.join("admin.kubeconfig"),
    }
}

/// A kube-rs client from a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> kube::Client {
    let yaml = std::fs::read_to_string(kubeconfig).expect("reading kubeconfig");
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("parsing kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig to config");
    kube::Client::try_from(config).expect("building client")
}
