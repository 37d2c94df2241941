//! The PriorityClass controller: with PriorityClass sync on
//! (`SyncerConfig::priority_classes`), every virtual PriorityClass gets its
//! host copy ([`crate::priorityclass`]: renamed, value capped, never the
//! host's default) through the generic [`super::to_host`] controller,
//! replaced when its immutable value or preemption policy changes.

use anyhow::Context as _;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, PostParams};

use super::to_host::SyncedToHost;
use crate::cluster_scoped::host_cluster_name;
use crate::cluster_scoped::with_markers;
use crate::engine::{Context, SyncerConfig, is_status};
use crate::error::TranslateError;
use crate::priorityclass as pc;

/// The kind name, as in metrics.
pub const KIND: &str = pc::KIND;

impl SyncedToHost for PriorityClass {
    const KIND: &'static str = KIND;
    fn enabled(config: &SyncerConfig) -> bool {
        config.priority_classes.is_some()
    }
    fn translate(config: &SyncerConfig, v: &Self) -> Result<Self, TranslateError> {
        let opts = config
            .priority_classes
            .unwrap_or(pc::PriorityClassOptions { max_value: 0 });
        pc::translate(&config.tenant, v, &opts)
    }
    fn needs_replace(desired: &Self, host: &Self) -> bool {
        pc::needs_replace(desired, host)
    }
    fn update(desired: &Self, host: &Self) -> Option<Self> {
        let mut out = host.clone();
        out.metadata = with_markers(&desired.metadata, &host.metadata);
        out.description.clone_from(&desired.description);
        (out != *host).then_some(out)
    }
}

/// Makes sure the host copy of virtual class `name` exists before a host
/// pod names it (the host's Priority admission refuses a pod whose class
/// does not exist). A missing virtual class is not an error: the pod then
/// fails on the host as it would have in the virtual cluster.
pub async fn ensure(ctx: &Context, name: &str) -> anyhow::Result<()> {
    let Some(opts) = ctx.config.priority_classes else {
        return Ok(());
    };
    let api = Api::<PriorityClass>::all(ctx.host_client.clone());
    if api
        .get_opt(&host_cluster_name(&ctx.tenant, name))
        .await?
        .is_some()
    {
        return Ok(());
    }
    let Some(v) = Api::<PriorityClass>::all(ctx.virtual_client.clone())
        .get_opt(name)
        .await?
    else {
        return Ok(());
    };
    match api
        .create(
            &PostParams::default(),
            &pc::translate(&ctx.tenant, &v, &opts)?,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(e).context("creating the host PriorityClass a pod names"),
    }
}
