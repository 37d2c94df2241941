//! Pure construction of the Events a tenant sees: host Events about synced
//! objects copied into the virtual namespace ([`translate_to_virtual`]), and
//! the syncer's own Warning Events on virtual objects ([`warning_event`]).

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::names::VirtualIdentity;

/// `source.component` and `reportingComponent` of the syncer's own Events.
pub const SYNCER_COMPONENT: &str = "vkube-syncer";

/// Reason: a host object not managed by this tenant occupies the host name.
pub const REASON_SYNC_CONFLICT: &str = "SyncConflict";

/// Reason: the object was refused (hostile or unsupported input).
pub const REASON_SYNC_REFUSED: &str = "SyncRefused";

/// Maximum length of an object name (DNS-1123 subdomain).
const MAX_NAME: usize = 253;

/// The name of the virtual copy of a host Event named `host_name`: the same
/// name when at most 253 characters, else its first 242 characters, `.` and
/// 10 hex characters of its SHA-256 (deterministic, so copying twice
/// updates rather than duplicates).
pub fn virtual_event_name(host_name: &str) -> String {
    if host_name.len() <= MAX_NAME {
        return host_name.to_string();
    }
    let mut cut = MAX_NAME - 11;
    while !host_name.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = Sha256::digest(host_name.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{}.{hex}", host_name[..cut].trim_end_matches(['.', '-']))
}

/// The virtual copy of `host_event`, which is about the host copy of the
/// virtual object `involved`: name [`virtual_event_name`], namespace
/// `involved.namespace`, involvedObject = {kind, namespace, name, uid of
/// `involved`, apiVersion `v1`, fieldPath kept}; reason, type, count,
/// first/last timestamps, eventTime, series, source, action and
/// reportingComponent/Instance kept; in the message every `HOSTNS/HOSTNAME`
/// of the host object becomes `NS/NAME` and every other occurrence of its
/// host name becomes the virtual name, so the tenant does not see the host
/// names of its own objects. `related` (a host object) and server-set metadata are
/// not copied.
pub fn translate_to_virtual(host_event: &Event, involved: &VirtualIdentity) -> Event {
    let host_obj_name = host_event.involved_object.name.clone().unwrap_or_default();
    let host_obj_ns = host_event
        .involved_object
        .namespace
        .clone()
        .unwrap_or_default();
    let message = host_event.message.as_ref().map(|m| {
        if host_obj_name.is_empty() {
            return m.clone();
        }
        let mut m = m.clone();
        if !host_obj_ns.is_empty() {
            m = m.replace(
                &format!("{host_obj_ns}/{host_obj_name}"),
                &format!("{}/{}", involved.namespace, involved.name),
            );
        }
        m.replace(&host_obj_name, &involved.name)
    });
    Event {
        metadata: ObjectMeta {
            name: Some(virtual_event_name(
                host_event.metadata.name.as_deref().unwrap_or_default(),
            )),
            namespace: Some(involved.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(involved.kind.clone()),
            namespace: Some(involved.namespace.clone()),
            name: Some(involved.name.clone()),
            uid: Some(involved.uid.clone()),
            field_path: host_event.involved_object.field_path.clone(),
            resource_version: None,
        },
        reason: host_event.reason.clone(),
        message,
        type_: host_event.type_.clone(),
        count: host_event.count,
        first_timestamp: host_event.first_timestamp.clone(),
        last_timestamp: host_event.last_timestamp.clone(),
        event_time: host_event.event_time.clone(),
        series: host_event.series.clone(),
        source: host_event.source.clone(),
        action: host_event.action.clone(),
        related: None,
        reporting_component: host_event.reporting_component.clone(),
        reporting_instance: host_event.reporting_instance.clone(),
    }
}

/// A Warning Event by the syncer on virtual object `name` (kind
/// `involved_kind`, namespace `namespace`, UID `uid`), e.g. reason
/// [`REASON_SYNC_CONFLICT`] or [`REASON_SYNC_REFUSED`]. Named
/// `<name>.<hex of now in Unix nanoseconds>` like client-go's recorder;
/// count 1, first/last timestamp `now`, source component
/// [`SYNCER_COMPONENT`].
pub fn warning_event(
    involved_kind: &str,
    namespace: &str,
    name: &str,
    uid: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Event {
    let nanos = now.as_nanosecond();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{nanos:x}")),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(involved_kind.to_string()),
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            uid: Some(uid.to_string()),
            ..Default::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some("Warning".into()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: None::<MicroTime>,
        source: Some(EventSource {
            component: Some(SYNCER_COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(SYNCER_COMPONENT.into()),
        reporting_instance: Some(SYNCER_COMPONENT.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> VirtualIdentity {
        VirtualIdentity {
            kind: "Pod".into(),
            namespace: "team".into(),
            name: "web".into(),
            uid: "v-uid".into(),
        }
    }

    #[test]
    fn host_event_is_translated_back() {
        let host = Event {
            metadata: ObjectMeta {
                name: Some("web-x-team-x-vc.17a".into()),
                namespace: Some("host-ns".into()),
                uid: Some("h".into()),
                resource_version: Some("3".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some("host-ns".into()),
                name: Some("web-x-team-x-vc".into()),
                uid: Some("host-pod-uid".into()),
                field_path: Some("spec.containers{app}".into()),
                ..Default::default()
            },
            reason: Some("Pulled".into()),
            message: Some("Successfully assigned host-ns/web-x-team-x-vc to node-1; pulled image for web-x-team-x-vc".into()),
            type_: Some("Normal".into()),
            count: Some(3),
            ..Default::default()
        };
        let v = translate_to_virtual(&host, &id());
        assert_eq!(v.metadata.name.as_deref(), Some("web-x-team-x-vc.17a"));
        assert_eq!(v.metadata.namespace.as_deref(), Some("team"));
        assert_eq!((v.metadata.uid, v.metadata.resource_version), (None, None));
        let o = &v.involved_object;
        assert_eq!(o.name.as_deref(), Some("web"));
        assert_eq!(o.namespace.as_deref(), Some("team"));
        assert_eq!(o.uid.as_deref(), Some("v-uid"));
        assert_eq!(o.api_version.as_deref(), Some("v1"));
        assert_eq!(o.field_path.as_deref(), Some("spec.containers{app}"));
        assert_eq!(
            v.message.as_deref(),
            Some("Successfully assigned team/web to node-1; pulled image for web")
        );
        assert_eq!(
            (v.reason, v.count, v.type_),
            (host.reason, Some(3), host.type_)
        );
    }

    #[test]
    fn long_event_names_are_hashed_deterministically() {
        let long = "a".repeat(300);
        let n = virtual_event_name(&long);
        assert_eq!(n.len(), 253);
        assert_eq!(n, virtual_event_name(&long));
        assert_ne!(n, virtual_event_name(&"a".repeat(301)));
        assert!(
            vkube_core::validation::is_dns1123_subdomain(&n).is_empty(),
            "{n}"
        );
    }

    #[test]
    fn warning_event_shape() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let e = warning_event(
            "Pod",
            "team",
            "web",
            "u",
            REASON_SYNC_REFUSED,
            "hostPath",
            now,
        );
        assert_eq!(e.metadata.name.as_deref(), Some("web.17979cfe362a0000"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("SyncRefused"));
        assert_eq!(
            e.source.unwrap().component.as_deref(),
            Some(SYNCER_COMPONENT)
        );
        assert_eq!(e.involved_object.uid.as_deref(), Some("u"));
        assert_eq!(e.first_timestamp, Some(Time(now)));
    }
}
