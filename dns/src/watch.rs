//! Keeps a [`DnsView`] current by watching the virtual cluster's Services
//! and EndpointSlices in every namespace (kube-runtime watchers, relisting
//! as a reflector does). Only the compact entries are kept; the watched
//! objects are dropped as soon as they are read.

use crate::view::DnsView;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use std::sync::{Arc, RwLock};

/// Watches Services and EndpointSlices through `client` into `view`,
/// forever: a failed watch (a dropped connection, a 410 after compaction)
/// is logged and resumed with backoff, relisting as a reflector does.
///
/// # Errors
/// None in practice; the result type leaves room for a fatal setup error.
pub async fn run(client: Client, view: Arc<RwLock<DnsView>>) -> anyhow::Result<()> {
    let services = watch_kind::<Service>(client.clone(), view.clone(), |v, e| match e {
        Change::Apply(s) => v.apply_service(&s),
        Change::Delete(s) => {
            v.delete_service(s.namespace().as_deref().unwrap_or_default(), &s.name_any())
        }
        Change::Replace(all) => v.replace_services(all.iter()),
    });
    let slices = watch_kind::<EndpointSlice>(client, view, |v, e| match e {
        Change::Apply(s) => v.apply_slice(&s),
        Change::Delete(s) => {
            v.delete_slice(s.namespace().as_deref().unwrap_or_default(), &s.name_any())
        }
        Change::Replace(all) => v.replace_slices(all.iter()),
    });
    tokio::try_join!(services, slices)?;
    Ok(())
}

/// One change to apply to the view.
enum Change<K> {
    Apply(K),
    Delete(K),
    /// A completed relist: every object there is.
    Replace(Vec<K>),
}

async fn watch_kind<K>(
    client: Client,
    view: Arc<RwLock<DnsView>>,
    apply: impl Fn(&mut DnsView, Change<K>),
) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::all(client);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist: Vec<K> = Vec::new();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(kind = %K::kind(&()), error = %e, "DNS watch failed; resuming");
                continue;
            }
        };
        let change = match event {
            watcher::Event::Init => {
                relist.clear();
                continue;
            }
            watcher::Event::InitApply(o) => {
                relist.push(o);
                continue;
            }
            watcher::Event::InitDone => Change::Replace(std::mem::take(&mut relist)),
            watcher::Event::Apply(o) => Change::Apply(o),
            watcher::Event::Delete(o) => Change::Delete(o),
        };
        let mut v = view.write().unwrap_or_else(|e| e.into_inner());
        apply(&mut v, change);
    }
    Ok(())
}
