//! Embeds the Helm chart (`../chart`) into the `vkube` binary, so that
//! `vkube create` installs exactly the chart of this source tree: writes
//! `$OUT_DIR/chart_files.rs`, a `&[(relative path, bytes)]` table.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let chart = manifest
        .join("../chart")
        .canonicalize()
        .expect("../chart exists");
    println!("cargo:rerun-if-changed={}", chart.display());
    let mut files = Vec::new();
    collect(&chart, &mut files);
    let mut code = String::from("&[\n");
    for f in files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f
            .strip_prefix(&chart)
            .unwrap()
            .to_str()
            .expect("UTF-8 path");
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?}) as &[u8]),\n",
            f.to_str().expect("UTF-8 path")
        ));
    }
    code.push_str("]\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("chart_files.rs");
    std::fs::write(out, code).expect("writing chart_files.rs");
}
