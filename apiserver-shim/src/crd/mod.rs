//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`) and the custom
//! resources they define, served as kube-apiextensions-server serves them.
//!
//! A CRD is an ordinary stored kind of the registry with its own strategy
//! (this module's pure functions: defaults, validation with
//! k8s.io/apiextensions-apiserver `validation.go`'s messages, and the status
//! its naming and establishing controllers would write). Every served
//! version of every CRD becomes one [`CustomVersion`]: a [`ResourceDef`]
//! row derived from the CRD (as the customresource strategy is) plus its
//! structural schema ([`schema`]) and printer columns. The rows live in a
//! [`CustomTable`], which [`CustomCache`] keeps current from the store, so
//! routing, discovery, OpenAPI and Table output follow a CRD's changes on
//! the next request. One REST layer serves built-in and custom kinds alike.
//!
//! Deleting a CRD marks it `Terminating` and holds it with the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer until
//! [`cleanup`] has deleted every object it defines.

pub mod cleanup;
pub mod schema;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};
use vkube_core::field::FieldError;
use vkube_core::validation as v;

use crate::error::ApiResult;
use crate::registry::{Def, NameRule, ResourceDef, ScaleDef, SelectableField};
use crate::store::{Followed, Storage};

/// The finalizer that holds a deleted CRD until its objects are gone
/// (`apiextensions.CustomResourceCleanupFinalizer`).
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Where CRDs are stored.
pub const PREFIX: &str = "/apiextensions.k8s.io/customresourcedefinitions/";

/// One served version of a CustomResourceDefinition.
pub struct CustomVersion {
    /// The row the REST layer serves (interned names; see [`intern`]).
    pub def: ResourceDef,
    /// The CRD's name (`<plural>.<group>`).
    pub crd: String,
    /// `spec.names.listKind`: the kind of a list of these objects.
    pub list_kind: String,
    /// `schema.openAPIV3Schema` of this version, checked structural when
    /// the CRD was written.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns` (or the default `Age` column).
    pub columns: Vec<PrinterColumn>,
    /// The CRD is being deleted: objects may be read and deleted, not
    /// created.
    pub terminating: bool,
    /// The schema's `pattern`s, compiled on the first write that needs
    /// them (not while the shared table is rebuilt).
    pub patterns: OnceLock<schema::Patterns>,
}

impl CustomVersion {
    /// Sets the schema's defaults in `obj` (a custom resource being
    /// written) and returns its schema violations. On an update (`old` is
    /// the stored object), errors in fields the update leaves as they were
    /// are dropped, as kube's validation ratcheting does, so an object
    /// stored before its schema tightened can still have finalizers,
    /// owners or status changed.
    pub fn default_and_validate(&self, obj: &mut Value, old: Option<&Value>) -> Vec<FieldError> {
        let Some(s) = &self.schema else {
            return Vec::new();
        };
        schema::apply_defaults(obj, s);
        let mut errs = schema::validate(obj, s, self.patterns.get_or_init(|| schema::patterns(s)));
        if let Some(old) = old {
            errs.retain(|e| {
                // A missing field is judged by the object that lacks it.
                let path = match e.reason {
                    "FieldValueRequired" => e.field.rsplit_once('.').map_or("", |(p, _)| p),
                    _ => e.field.as_str(),
                };
                // A path that does not lead back to the value (a map key
                // with a dot or bracket in it) keeps its error.
                let pointer = schema::pointer_of(path);
                match obj.pointer(&pointer) {
                    Some(now) => old.pointer(&pointer) != Some(now),
                    None => true,
                }
            });
        }
        errs
    }
}

/// One `additionalPrinterColumns` entry, its JSONPath parsed once.
pub struct PrinterColumn {
    /// Header.
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub ty: String,
    /// OpenAPI format hint (`name` for the name column).
    pub format: String,
    /// Description.
    pub description: String,
    /// 0: always shown; more: `kubectl get -o wide` only.
    pub priority: i64,
    /// The column's JSONPath (kube's simple form, `.spec.replicas`), as
    /// given; `None` in [`PrinterColumn::query`] when it does not parse.
    pub json_path: String,
    /// [`PrinterColumn::json_path`] parsed.
    pub query: Option<jsonpath_rust::parser::model::JpQuery>,
}

impl PrinterColumn {
    /// The column's cell for `obj`, as the CRD table convertor makes it
    /// (k8s.io/apiextensions-apiserver `tableconvertor`): the first match;
    /// strings printed as text, other values as JSON; integers, numbers
    /// and booleans typed; a `date` as the time since it; `null` when the
    /// path matches nothing or the value has the wrong type.
    pub fn cell(&self, obj: &Value, now: jiff::Timestamp) -> Value {
        let Some(q) = &self.query else {
            return Value::Null;
        };
        let Ok(found) = jsonpath_rust::query::js_path_process(q, obj) else {
            return Value::Null;
        };
        let Some(value) = found.into_iter().next().map(|r| r.val()) else {
            return Value::Null;
        };
        match (self.ty.as_str(), value) {
            ("string", Value::String(s)) => json!(s),
            ("string", other) => json!(other.to_string()),
            ("integer", Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map_or(Value::Null, |i| json!(i)),
            ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
            ("boolean", Value::Bool(b)) => json!(b),
            ("date", Value::String(s)) => match s.parse::<jiff::Timestamp>() {
                Ok(t) => json!(crate::table::since(Some(t), now)),
                Err(_) => Value::Null,
            },
            _ => Value::Null,
        }
    }
}

/// Every served custom resource version, derived from the stored CRDs.
#[derive(Default)]
pub struct CustomTable {
    versions: Vec<Arc<CustomVersion>>,
    /// The OpenAPI documents of the table's group-versions, built on the
    /// first request for them (the table is rebuilt on every CRD change).
    openapi: OnceLock<Vec<crate::openapi::GroupVersionDoc>>,
}

impl CustomTable {
    /// The table of `crds` (CustomResourceDefinition objects): one row per
    /// served version of each CRD whose names were accepted.
    pub fn from_crds<'a>(crds: impl IntoIterator<Item = &'a Value>) -> Self {
        Self::from_rows(crds.into_iter().flat_map(rows_of))
    }

    fn from_rows(versions: impl IntoIterator<Item = Arc<CustomVersion>>) -> Self {
        Self {
            versions: versions.into_iter().collect(),
            openapi: OnceLock::new(),
        }
    }

    /// The OpenAPI v3 documents of the custom group-versions
    /// ([`crate::openapi::custom_documents`]).
    pub fn openapi_documents(&self) -> &[crate::openapi::GroupVersionDoc] {
        self.openapi
            .get_or_init(|| crate::openapi::custom_documents(self))
    }

    /// The version served at `group`/`version`/`resource`.
    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<Def> {
        self.versions
            .iter()
            .find(|c| {
                c.def.group == group && c.def.version == version && c.def.resource == resource
            })
            .map(|c| Def::Custom(c.clone()))
    }

    /// Every row, grouped by CRD.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CustomVersion>> {
        self.versions.iter()
    }

    /// The rows of `group`/`version`.
    pub fn of<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<CustomVersion>> + 'a {
        self.versions
            .iter()
            .filter(move |c| c.def.group == group && c.def.version == version)
    }

    /// The groups with their versions, each group's versions in
    /// kube's priority order (GA before beta before alpha, newer first;
    /// `version.CompareKubeAwareVersionStrings`), the first preferred.
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for c in &self.versions {
            match out.iter_mut().find(|(g, _)| *g == c.def.group) {
                Some((_, vs)) if !vs.contains(&c.def.version) => vs.push(c.def.version),
                Some(_) => {}
                None => out.push((c.def.group, vec![c.def.version])),
            }
        }
        for (_, vs) in &mut out {
            vs.sort_by_key(|v| version_priority(v));
        }
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Whether anything is served at `group`/`version`.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.of(group, version).next().is_some()
    }
}

/// Sort key of a version name: kube-like names (`v1`, `v2beta1`,
/// `v1alpha2`) first, GA then beta then alpha, higher numbers first; other
/// names after them, alphabetically.
fn version_priority(v: &str) -> (u8, i64, i64, String) {
    let parsed = v.strip_prefix('v').and_then(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let major: i64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        let (stage, n) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else {
            (2, tail.strip_prefix("alpha")?)
        };
        let minor: i64 = n.parse().ok()?;
        Some((stage, -major, -minor))
    });
    match parsed {
        Some((stage, major, minor)) => (stage, major, minor, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

/// How many bytes [`intern`] may keep for the whole process: custom
/// names are kept forever, so a tenant writing CRD after CRD with new
/// names could otherwise grow the server without bound. Thousands of
/// ordinary CRDs fit many times over; past it, a CRD with new names is
/// stored but not served (and a warning is logged).
const INTERN_BUDGET: usize = 16 << 20;

/// Bytes interned so far (strings and the lists holding them).
static INTERNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Takes `bytes` from [`INTERN_BUDGET`], if that much is left.
fn spend(bytes: usize) -> Option<()> {
    use std::sync::atomic::Ordering;
    INTERNED
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            (used + bytes <= INTERN_BUDGET).then_some(used + bytes)
        })
        .ok()
        .map(|_| ())
}

/// Whether the names a CRD's rows intern fit what is left of
/// [`INTERN_BUDGET`] (counting all of them, as if none were interned yet).
fn names_fit(crd: &Value) -> bool {
    use std::sync::atomic::Ordering;
    let size = |v: Option<&Value>| v.map_or(0, |v| v.to_string().len());
    let needed = size(crd.pointer("/spec/names"))
        + size(crd.pointer("/spec/group"))
        + crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .map_or(0, |vs| {
                vs.iter()
                    .map(|v| {
                        size(v.get("name"))
                            + size(v.pointer("/subresources/scale"))
                            + size(v.get("selectableFields"))
                    })
                    .sum()
            });
    INTERNED.load(Ordering::Relaxed) + needed <= INTERN_BUDGET
}

/// Interns `s` for the life of the process: a [`ResourceDef`] row holds
/// `&'static str`s, and a custom row is rebuilt on every change of its CRD.
/// Each distinct name costs its bytes once, however often it is reused;
/// `None` once [`INTERN_BUDGET`] is spent.
pub fn intern(s: &str) -> Option<&'static str> {
    static STRINGS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = STRINGS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = set.get(s) {
        return Some(found);
    }
    spend(s.len())?;
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    Some(leaked)
}

/// Interns a list of names, as [`intern`].
pub fn intern_list(items: &[&str]) -> Option<&'static [&'static str]> {
    static LISTS: OnceLock<Mutex<HashSet<&'static [&'static str]>>> = OnceLock::new();
    if items.is_empty() {
        return Some(&[]);
    }
    let interned = items
        .iter()
        .map(|s| intern(s))
        .collect::<Option<Vec<&'static str>>>()?;
    let mut set = LISTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = set.get(interned.as_slice()) {
        return Some(found);
    }
    spend(std::mem::size_of_val(interned.as_slice()))?;
    let leaked: &'static [&'static str] = Box::leak(interned.into_boxed_slice());
    set.insert(leaked);
    Some(leaked)
}

/// Interns a version's selectable fields, as [`intern`].
fn intern_fields(fields: Vec<SelectableField>) -> Option<&'static [SelectableField]> {
    static FIELDS: OnceLock<Mutex<HashSet<&'static [SelectableField]>>> = OnceLock::new();
    if fields.is_empty() {
        return Some(&[]);
    }
    let mut set = FIELDS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = set.get(fields.as_slice()) {
        return Some(found);
    }
    spend(std::mem::size_of_val(fields.as_slice()))?;
    let leaked: &'static [SelectableField] = Box::leak(fields.into_boxed_slice());
    set.insert(leaked);
    Some(leaked)
}

/// A version's `selectableFields` (`jsonPath: .spec.color`) as field
/// selector keys (`spec.color`); an unset field compares as `""`.
fn selectable_fields(ver: &Value) -> Option<&'static [SelectableField]> {
    let fields = ver
        .get("selectableFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f["jsonPath"].as_str())
                .map(|p| {
                    let name = intern(p.trim_start_matches('.'))?;
                    Some(SelectableField {
                        name,
                        path: name,
                        zero: "",
                    })
                })
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or(Some(Vec::new()))?;
    intern_fields(fields)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings_at<'a>(v: &'a Value, pointer: &str) -> Vec<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A `.spec.replicas`-style path as segments.
fn path_segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect()
}

/// [`versions_of`], shared.
fn rows_of(crd: &Value) -> Vec<Arc<CustomVersion>> {
    versions_of(crd).into_iter().map(Arc::new).collect()
}

/// The served versions of one CRD as rows; none when its names are not
/// accepted or it has no storage version. Names are read from the
/// validated `spec.names` (which the CRD's own name, `<plural>.<group>`,
/// ties to the CRD), never from the client-writable status.
fn versions_of(crd: &Value) -> Vec<CustomVersion> {
    let accepted = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "NamesAccepted" && c["status"] == "True")
        });
    let names = crd.pointer("/spec/names").unwrap_or(&Value::Null);
    let group = str_at(crd, "/spec/group");
    let plural = str_at(names, "/plural");
    let kind = str_at(names, "/kind");
    if !accepted
        || group.is_empty()
        || plural.is_empty()
        || kind.is_empty()
        || crate::meta::name(crd) != format!("{plural}.{group}")
    {
        return Vec::new();
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let Some(storage) = versions
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
    else {
        return Vec::new();
    };
    let singular = match str_at(names, "/singular") {
        "" => kind.to_ascii_lowercase(),
        s => s.to_string(),
    };
    let namespaced = str_at(crd, "/spec/scope") == "Namespaced";
    let terminating = crate::meta::is_deleting(crd);
    let rows = || -> Option<Vec<CustomVersion>> {
        let short_names = intern_list(&strings_at(names, "/shortNames"))?;
        let categories = intern_list(&strings_at(names, "/categories"))?;
        let mut out = Vec::new();
        // Without the conversion webhook, versions of a Webhook CRD
        // cannot be converted: only the storage version is served.
        let webhook = str_at(crd, "/spec/conversion/strategy") == "Webhook";
        for ver in versions
            .iter()
            .filter(|v| v["served"] == true)
            .filter(|v| !webhook || v["storage"] == true)
        {
            let Some(version) = ver["name"].as_str() else {
                continue;
            };
            let scale = match ver.pointer("/subresources/scale") {
                Some(s) => Some(ScaleDef {
                    spec_replicas: intern_list(&path_segments(str_at(s, "/specReplicasPath")))?,
                    status_replicas: intern_list(&path_segments(str_at(s, "/statusReplicasPath")))?,
                    selector: intern_list(&path_segments(str_at(s, "/labelSelectorPath")))?,
                    unset_replicas: 0,
                }),
                None => None,
            };
            let mut def = crate::registry::def(
                intern(group)?,
                intern(version)?,
                intern(plural)?,
                intern(kind)?,
                intern(&singular)?,
                namespaced,
            );
            def.short_names = short_names;
            def.categories = categories;
            def.status = ver.pointer("/subresources/status").is_some();
            def.scale = scale;
            def.field_selectors = selectable_fields(ver)?;
            def.generation = true;
            def.name_rule = NameRule::Subdomain;
            def.stored_version = Some(intern(storage)?);
            out.push(CustomVersion {
                def,
                crd: crate::meta::name(crd).to_string(),
                list_kind: match str_at(names, "/listKind") {
                    "" => format!("{kind}List"),
                    l => l.to_string(),
                },
                patterns: OnceLock::new(),
                schema: ver.pointer("/schema/openAPIV3Schema").cloned(),
                columns: printer_columns(ver),
                terminating,
            });
        }
        Some(out)
    };
    rows().unwrap_or_else(|| {
        tracing::warn!(
            crd = crate::meta::name(crd),
            "this server keeps no more custom resource names; the CRD is stored but not served"
        );
        Vec::new()
    })
}

/// A version's printer columns; `Age` when it names none
/// (`serveDefaultColumnsIfEmpty`).
fn printer_columns(ver: &Value) -> Vec<PrinterColumn> {
    let given = ver
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    let default = [json!({
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    })];
    given
        .map(Vec::as_slice)
        .unwrap_or(&default)
        .iter()
        .map(|c| {
            let json_path = str_at(c, "/jsonPath").to_string();
            PrinterColumn {
                name: str_at(c, "/name").to_string(),
                ty: str_at(c, "/type").to_string(),
                format: str_at(c, "/format").to_string(),
                description: str_at(c, "/description").to_string(),
                priority: c["priority"].as_i64().unwrap_or(0),
                query: (!calls_regex(&json_path))
                    .then(|| jsonpath_rust::parser::parse_json_path(&format!("${json_path}")).ok())
                    .flatten(),
                json_path,
            }
        })
        .collect()
}

// ---- The CRD strategy (pure) ----

/// `SetDefaults_CustomResourceDefinition` (apiextensions v1 defaults.go):
/// `conversion.strategy: None`, `names.singular` from the kind,
/// `names.listKind` as `<Kind>List`, a conversion webhook service's port
/// 443.
pub fn default_crd(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let conversion = spec.entry("conversion").or_insert_with(|| json!({}));
    if let Some(c) = conversion.as_object_mut() {
        c.entry("strategy").or_insert_with(|| json!("None"));
        if let Some(service) = c
            .get_mut("webhook")
            .and_then(|w| w.pointer_mut("/clientConfig/service"))
            .and_then(Value::as_object_mut)
        {
            service.entry("port").or_insert_with(|| json!(443));
        }
    }
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !kind.is_empty() {
            names
                .entry("singular")
                .or_insert_with(|| json!(kind.to_ascii_lowercase()));
            names
                .entry("listKind")
                .or_insert_with(|| json!(format!("{kind}List")));
        }
    }
}

/// Sets condition `kind` of a CRD's status (`SetCRDCondition`): the
/// transition time changes only with the status.
fn set_condition(crd: &mut Value, kind: &str, status: &str, reason: &str, message: &str) {
    let status_obj = crate::meta::ensure_object(crd, "status");
    let conditions = status_obj.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("made an array above");
    let now = crate::meta::now_rfc3339();
    match list.iter_mut().find(|c| c["type"] == kind) {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => list.push(json!({
            "type": kind,
            "status": status,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        })),
    }
}

/// What the naming and establishing controllers write into a CRD's status
/// once its names are accepted: `acceptedNames` from `spec.names`,
/// `NamesAccepted` and `Established` true, and the storage version added
/// to `storedVersions`. A CRD's names never conflict with another's here
/// beyond what its unique name already rules out (plural and group).
fn accept(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        .and_then(|v| v["name"].as_str())
        .map(str::to_string);
    let status = crate::meta::ensure_object(crd, "status");
    status.insert("acceptedNames".into(), names);
    let stored = status.entry("storedVersions").or_insert_with(|| json!([]));
    if !stored.is_array() {
        *stored = json!([]);
    }
    if let (Some(storage), Some(list)) = (storage, stored.as_array_mut())
        && !list.iter().any(|v| v == storage.as_str())
    {
        list.push(json!(storage));
    }
    set_condition(
        crd,
        "NamesAccepted",
        "True",
        "NoConflicts",
        "no conflicts found",
    );
    set_condition(
        crd,
        "Established",
        "True",
        "InitialNamesAccepted",
        "the initial names have been accepted",
    );
}

/// A new CRD's status: accepted and established at once.
pub fn prepare_create(crd: &mut Value) {
    warn_unenforced(crd);
    accept(crd);
}

/// An updated CRD keeps its status, with the (possibly new) names and
/// storage version accepted.
pub fn prepare_update(crd: &mut Value, _old: &Value) {
    warn_unenforced(crd);
    if !crate::meta::is_deleting(crd) {
        accept(crd);
    }
}

/// A status write keeps what this server's naming controller decides:
/// the accepted names, storage versions and conditions follow the spec.
pub fn prepare_status_update(crd: &mut Value, _old: &Value) {
    if !crate::meta::is_deleting(crd) {
        accept(crd);
    }
}

/// Tells the writer of a CRD which of its rules this server stores but does
/// not enforce yet (a `Warning` header, which kubectl prints).
fn warn_unenforced(crd: &Value) {
    fn has_rules(v: &Value) -> bool {
        match v {
            Value::Object(m) => {
                m.contains_key("x-kubernetes-validations") || m.values().any(has_rules)
            }
            Value::Array(a) => a.iter().any(has_rules),
            _ => false,
        }
    }
    if crd.pointer("/spec/versions").is_some_and(has_rules) {
        crate::warning::add(
            "x-kubernetes-validations rules are stored but not evaluated by this server yet".into(),
        );
    }
    if crd.pointer("/spec/conversion/strategy") == Some(&json!("Webhook")) {
        crate::warning::add(
            "the conversion webhook is not called by this server yet: only the storage version is served".into(),
        );
    }
}

/// A live CRD holds its first delete: [`begin_deletion`] adds the cleanup
/// finalizer instead.
pub fn holds_deletion(crd: &Value) -> bool {
    !crate::meta::is_deleting(crd)
}

/// A deleted CRD turns `Terminating` and gets the cleanup finalizer, as
/// the CRD REST storage's `Delete` does.
pub fn begin_deletion(crd: &mut Value) {
    let md = crate::meta::metadata_mut(crd);
    let finalizers = md.entry("finalizers").or_insert_with(|| json!([]));
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    let list = finalizers.as_array_mut().expect("made an array above");
    if !list.iter().any(|f| f == CLEANUP_FINALIZER) {
        list.push(json!(CLEANUP_FINALIZER));
    }
    set_condition(
        crd,
        "Terminating",
        "True",
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    );
}

fn dns1035(errs: &mut Vec<FieldError>, path: &str, value: &str) {
    let msgs = v::is_dns1035_label(value);
    if !msgs.is_empty() {
        errs.push(FieldError::invalid(path, &json!(value), &msgs.join(",")));
    }
}

/// `ValidateCustomResourceDefinition` of a new CRD (k8s.io/apiextensions-
/// apiserver `pkg/apis/apiextensions/validation`): the name is
/// `<plural>.<group>`, the group a domain with a dot, the names DNS-1035
/// labels (the kinds in any case), the scope known, unique DNS-1035 version
/// names with exactly one storage version, and a structural schema per
/// version ([`schema::validate_schema`]).
pub fn validate_create(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    if crate::meta::name(crd) != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(crate::meta::name(crd)),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        let msgs = v::is_dns1123_subdomain(group);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                "spec.group",
                &json!(group),
                &msgs.join(","),
            ));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                &json!(group),
                "should be a domain with at least one dot",
            ));
        } else if crate::registry::groups().iter().any(|(g, _)| *g == group)
            || group == vkube_core::metrics::GROUP
        {
            // Upstream, a CRD in a built-in group is stored but never
            // served (the built-in API wins); refusing it says so at once.
            errs.push(FieldError::invalid(
                "spec.group",
                &json!(group),
                "is a built-in API group of this server",
            ));
        }
        let protected = [".k8s.io", ".kubernetes.io"]
            .iter()
            .any(|suffix| group.ends_with(suffix))
            || matches!(group, "k8s.io" | "kubernetes.io");
        if protected
            && crd
                .pointer("/metadata/annotations/api-approved.kubernetes.io")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            errs.push(FieldError::required(
                "metadata.annotations[api-approved.kubernetes.io]",
                "protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
            ));
        }
    }
    match str_at(crd, "/spec/scope") {
        "" => errs.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            "spec.scope",
            &json!(other),
            &["Cluster", "Namespaced"],
        )),
    }
    validate_names(&mut errs, crd);
    if !names_fit(crd) {
        errs.push(FieldError::forbidden(
            "spec.names",
            "this server keeps no more custom resource names; delete unused CRDs or restart it",
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut seen = HashSet::new();
    let mut unique = true;
    let mut storage = 0;
    for (i, ver) in versions.iter().enumerate() {
        let name = ver["name"].as_str().unwrap_or("");
        let path = format!("spec.versions[{i}]");
        if ver["storage"] == true {
            storage += 1;
        }
        if !seen.insert(name) {
            unique = false;
        }
        dns1035(&mut errs, &format!("{path}.name"), name);
        match ver.pointer("/schema/openAPIV3Schema") {
            None => errs.push(FieldError::required(
                format!("{path}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(s) => errs.extend(schema::validate_schema(
                s,
                &format!("{path}.schema.openAPIV3Schema"),
            )),
        }
        if let Some(scale) = ver.pointer("/subresources/scale") {
            let spath = format!("{path}.subresources.scale");
            for (field, under, required) in [
                ("specReplicasPath", &[".spec."][..], true),
                ("statusReplicasPath", &[".status."][..], true),
                ("labelSelectorPath", &[".spec.", ".status."][..], false),
            ] {
                let value = str_at(scale, &format!("/{field}"));
                let fpath = format!("{spath}.{field}");
                if value.is_empty() {
                    if required {
                        errs.push(FieldError::required(fpath, ""));
                    }
                } else if !simple_path(value) {
                    errs.push(FieldError::invalid(
                        fpath,
                        &json!(value),
                        "must be a simple json path",
                    ));
                } else if !under.iter().any(|u| value.starts_with(u)) {
                    let detail = if under.len() == 1 {
                        format!(
                            "should be a json path under {}",
                            under[0].trim_end_matches('.')
                        )
                    } else {
                        "should be a json path under either .spec or .status".to_string()
                    };
                    errs.push(FieldError::invalid(fpath, &json!(value), &detail));
                }
            }
        }
        for (j, col) in ver
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let cpath = format!("{path}.additionalPrinterColumns[{j}]");
            if str_at(col, "/name").is_empty() {
                errs.push(FieldError::required(format!("{cpath}.name"), ""));
            }
            match str_at(col, "/type") {
                "" => errs.push(FieldError::required(format!("{cpath}.type"), "")),
                "integer" | "number" | "string" | "boolean" | "date" => {}
                other => errs.push(FieldError::not_supported(
                    format!("{cpath}.type"),
                    &json!(other),
                    &["boolean", "date", "integer", "number", "string"],
                )),
            }
            let jp = str_at(col, "/jsonPath");
            // kube's column paths (client-go JSONPath) have no functions;
            // `match()`/`search()` would compile a regex per printed row.
            if jp.is_empty() {
                errs.push(FieldError::required(format!("{cpath}.jsonPath"), ""));
            } else if !jp.starts_with('.')
                || calls_regex(jp)
                || jsonpath_rust::parser::parse_json_path(&format!("${jp}")).is_err()
            {
                errs.push(FieldError::invalid(
                    format!("{cpath}.jsonPath"),
                    &json!(jp),
                    "must be a simple json path",
                ));
            }
        }
    }
    for (i, ver) in versions.iter().enumerate() {
        let fields = ver
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let path = format!("spec.versions[{i}].selectableFields");
        if fields.len() > 8 {
            errs.push(FieldError {
                reason: "FieldValueTooMany",
                field: path.clone(),
                message: format!("Too many: {}: must have at most 8 items", fields.len()),
            });
        }
        let mut seen = HashSet::new();
        for (j, f) in fields.iter().enumerate() {
            let jp = str_at(f, "/jsonPath");
            let fpath = format!("{path}[{j}].jsonPath");
            if jp.is_empty() {
                errs.push(FieldError::required(fpath, ""));
            } else if !simple_path(jp) {
                errs.push(FieldError::invalid(
                    fpath,
                    &json!(jp),
                    "must be a simple json path",
                ));
            } else if matches!(jp, ".metadata.name" | ".metadata.namespace") {
                errs.push(FieldError::invalid(
                    fpath,
                    &json!(jp),
                    "is a selectable field of every resource already",
                ));
            } else if !seen.insert(jp) {
                errs.push(FieldError::duplicate(fpath, &json!(jp)));
            }
        }
    }
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!(versions),
            "must have exactly one version marked as storage version",
        ));
    } else {
        if !unique {
            errs.push(FieldError::invalid(
                "spec.versions",
                &json!(versions),
                "must contain unique version names",
            ));
        }
        if storage != 1 {
            errs.push(FieldError::invalid(
                "spec.versions",
                &json!(versions),
                "must have exactly one version marked as storage version",
            ));
        }
    }
    match str_at(crd, "/spec/conversion/strategy") {
        "" | "None" => {}
        // Stored as given; see warn_unenforced.
        "Webhook" => {}
        other => errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            &json!(other),
            &["None", "Webhook"],
        )),
    }
    errs
}

/// Whether a JSONPath calls `match` or `search` (whitespace allowed before
/// the parenthesis), which would compile a regular expression for every
/// printed row; kube's column paths have no functions at all.
fn calls_regex(path: &str) -> bool {
    ["match", "search"].iter().any(|f| {
        path.match_indices(f)
            .any(|(i, _)| path[i + f.len()..].trim_start().starts_with('('))
    })
}

/// A path of field names, `.spec.replicas` (at most 256 bytes).
fn simple_path(p: &str) -> bool {
    p.len() <= 256
        && p.starts_with('.')
        && p[1..].split('.').all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// `ValidateCustomResourceDefinitionNames`.
fn validate_names(errs: &mut Vec<FieldError>, crd: &Value) {
    let names = crd.pointer("/spec/names").unwrap_or(&Value::Null);
    for field in ["plural", "singular"] {
        let value = str_at(names, &format!("/{field}"));
        let path = format!("spec.names.{field}");
        if value.is_empty() {
            errs.push(FieldError::required(path, ""));
        } else {
            dns1035(errs, &path, value);
        }
    }
    for field in ["kind", "listKind"] {
        let value = str_at(names, &format!("/{field}"));
        let path = format!("spec.names.{field}");
        if value.is_empty() {
            errs.push(FieldError::required(path, ""));
            continue;
        }
        let msgs = v::is_dns1035_label(&value.to_ascii_lowercase());
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                path,
                &json!(value),
                &format!(
                    "may have mixed case, but should otherwise match: {}",
                    msgs.join(",")
                ),
            ));
        }
    }
    let kind = str_at(names, "/kind");
    if !kind.is_empty() && kind == str_at(names, "/listKind") {
        errs.push(FieldError::invalid(
            "spec.names.listKind",
            &json!(kind),
            "kind and listKind may not be the same",
        ));
    }
    for (list, field) in [("/shortNames", "shortNames"), ("/categories", "categories")] {
        for (i, s) in strings_at(names, list).into_iter().enumerate() {
            dns1035(errs, &format!("spec.names.{field}[{i}]"), s);
        }
    }
}

/// `ValidateCustomResourceDefinitionUpdate`: the create checks, an
/// unchanged group and scope, and every version in `status.storedVersions`
/// still listed in `spec.versions`.
pub fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_create(new);
    // The group checks judge a CRD once, when its group is set (upstream
    // checks the approval annotation only when its state changes).
    if new.pointer("/spec/group") == old.pointer("/spec/group") {
        let approval = |c: &Value| {
            c.pointer("/metadata/annotations/api-approved.kubernetes.io")
                .is_some()
        };
        let same_approval = approval(new) == approval(old);
        errs.retain(|e| {
            let built_in = e.field == "spec.group"
                && e.message
                    .ends_with("is a built-in API group of this server");
            let unapproved =
                e.field == "metadata.annotations[api-approved.kubernetes.io]" && same_approval;
            !built_in && !unapproved
        });
    }
    for (pointer, field) in [("/spec/group", "spec.group"), ("/spec/scope", "spec.scope")] {
        if new.pointer(pointer) != old.pointer(pointer) {
            errs.push(FieldError::immutable(
                field,
                new.pointer(pointer).unwrap_or(&Value::Null),
            ));
        }
    }
    let names: HashSet<&str> = new
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    for (i, stored) in strings_at(old, "/status/storedVersions")
        .into_iter()
        .enumerate()
    {
        if !names.contains(stored) {
            errs.push(FieldError::invalid(
                format!("status.storedVersions[{i}]"),
                &json!(stored),
                "must appear in spec.versions",
            ));
        }
    }
    errs
}

// ---- The live table ----

/// The rows of each stored CRD (by name) and the table made from them; a
/// CRD's change rebuilds only its own rows (its names are interned once).
#[derive(Default)]
struct Rows {
    crds: BTreeMap<String, Vec<Arc<CustomVersion>>>,
    table: Arc<CustomTable>,
}

/// A [`CustomTable`] kept current from the store ([`Followed`], as the RBAC
/// policy is), so a request that follows a CRD's acknowledged write
/// already sees it.
#[derive(Default)]
pub struct CustomCache {
    live: Followed<Rows>,
}

impl CustomCache {
    /// The table as of every CRD write acknowledged so far.
    ///
    /// # Errors
    /// `500` when the store cannot be listed or watched.
    pub async fn current(&self, store: &dyn Storage) -> ApiResult<Arc<CustomTable>> {
        self.live
            .current(
                store,
                PREFIX,
                |rows, key, value| {
                    let Some(name) = key.strip_prefix(PREFIX) else {
                        return;
                    };
                    match value.map(serde_json::from_slice::<Value>) {
                        Some(Ok(crd)) => rows.crds.insert(name.to_string(), rows_of(&crd)),
                        _ => rows.crds.remove(name),
                    };
                },
                |rows, changed| {
                    if changed {
                        rows.table = Arc::new(CustomTable::from_rows(
                            rows.crds.values().flatten().cloned(),
                        ));
                    }
                    rows.table.clone()
                },
            )
            .await
    }
}

#[cfg(test)]
mod tests;
