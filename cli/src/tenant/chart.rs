//! The vkube Helm chart embedded into the binary at build time (see
//! `cli/build.rs`): one source of truth with `chart/` in the repository.

use anyhow::{Context, Result};
use std::path::Path;

/// Every file of `chart/` as (path relative to the chart root, contents).
pub const FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/chart_files.rs"));

/// Writes the embedded chart into `dir` (created if missing), so that helm
/// can read it. Errors: the directory or a file cannot be written.
pub fn write_to(dir: &Path) -> Result<()> {
    for (rel, bytes) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_chart_is_complete() {
        let names: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        for want in [
            "Chart.yaml",
            "values.yaml",
            "values.schema.json",
            "templates/statefulset.yaml",
            "templates/rbac.yaml",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        write_to(dir.path()).unwrap();
        let chart = std::fs::read_to_string(dir.path().join("Chart.yaml")).unwrap();
        assert!(chart.contains("name: vkube"));
    }
}
