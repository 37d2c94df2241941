//! Pure building blocks of vkube: label and field selectors and the
//! name/label validators of Kubernetes' apimachinery, with no I/O.
//!
//! Each module follows a named piece of `k8s.io/apimachinery` closely enough
//! that accepted inputs, match results and error texts are the ones
//! kube-apiserver would produce:
//!
//! - [`labels`]: `pkg/labels` (`labels.Parse`) and `metav1.LabelSelector`
//!   conversion (`LabelSelectorAsSelector`, `FormatLabelSelector`).
//! - [`fields`]: `pkg/fields` (`fields.ParseSelector`) plus a JSON field reader.
//! - [`gojson`]: Go's `encoding/json` over the Kubernetes types: the bytes
//!   kube-apiserver writes (field order, omitempty, zero values).
//! - [`managed_fields`]: structured-merge-diff field sets, the apply merge
//!   and `metadata.managedFields` (server-side apply).
//! - [`validation`]: `pkg/util/validation` (`IsDNS1123Subdomain`,
//!   `IsDNS1123Label`, `IsQualifiedName`, `IsValidLabelValue`).
//! - [`protobuf`]: `runtime/serializer/protobuf` request bodies decoded to JSON.
//! - [`field`]: `pkg/util/validation/field` errors and their message text.
//! - [`defaults`]: the `SetDefaults_*` functions of the built-in kinds.
//! - [`apivalidation`]: per-kind validation (`ValidatePod`, `ValidateService`, …).
//! - [`service`]: the service CIDR, the Service registry's update rules and
//!   [`service::HostAllocator`], the seam through which a host cluster
//!   allocates a virtual Service's addresses.
//! - [`connect`]: the connect subresources of a pod (`pods/log`, `exec`,
//!   `attach`, `portforward`) and [`connect::PodConnector`], the seam
//!   through which a server reaches the pod (the host, or a node stand-in).
//! - [`metrics`]: `metrics.k8s.io` (`kubectl top`) and
//!   [`metrics::MetricsProvider`], where a server gets its figures.
//! - [`monitoring`]: the Prometheus registry a `/metrics` endpoint encodes
//!   and client-go's work queue metrics.
//! - [`podsecurity`]: the PodSecurity admission seam.
//! - [`quantity`]: `resource.Quantity` parsing, exact arithmetic, rendering.
//! - [`quota`]: ResourceQuota usage evaluation and admission checks.
//! - [`limitrange`]: the LimitRanger admission plugin's container defaults.
//! - [`serviceaccount`]: the `default` ServiceAccount and `kube-root-ca.crt`
//!   ConfigMap every namespace holds.
#![warn(missing_docs)]

pub mod apivalidation;
pub mod connect;
pub mod defaults;
pub mod eviction;
pub mod field;
pub mod fields;
pub mod gojson;
pub mod labels;
pub mod limitrange;
pub mod managed_fields;
pub mod metrics;
pub mod monitoring;
pub mod podsecurity;
pub mod protobuf;
pub mod quantity;
pub mod quota;
pub mod service;
pub mod serviceaccount;
pub mod smp;
pub mod validation;
