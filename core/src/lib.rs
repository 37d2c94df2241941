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
//! - [`managed_fields`]: structured-merge-diff field sets, the apply merge
//!   and `metadata.managedFields` (server-side apply).
//! - [`validation`]: `pkg/util/validation` (`IsDNS1123Subdomain`,
//!   `IsDNS1123Label`, `IsQualifiedName`, `IsValidLabelValue`).
//! - [`protobuf`]: `runtime/serializer/protobuf` request bodies decoded to JSON.
#![warn(missing_docs)]

pub mod fields;
pub mod labels;
pub mod managed_fields;
pub mod protobuf;
pub mod smp;
pub mod validation;
