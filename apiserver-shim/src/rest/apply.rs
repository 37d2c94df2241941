//! `PATCH` with `application/apply-patch+yaml`: server-side apply through
//! the generic write path (k8s.io/apiserver `applyPatcher`).

use super::{Api, requested_update};
use crate::error::{ApiError, ApiResult};
use crate::fieldmanager;
use crate::meta;
use crate::registry::ResourceDef;
use crate::request::{Query, Representation, Target};
use axum::response::Response;
use http::StatusCode;

impl Api {
    /// Applies the configuration in `body` (JSON or YAML) as
    /// `query.field_manager` (validated by the caller), creating the object
    /// when it does not exist (`201`; main resource only, namespace must
    /// exist). A `metadata.resourceVersion` in the configuration is a
    /// precondition (`409` when stale). Conflicts are `409` with
    /// `FieldManagerConflict` causes unless `force=true`; `dryRun=All`
    /// computes without storing. Apply to `scale` is not served (`415`).
    pub(super) async fn apply_patch(
        &self,
        target: &Target,
        name: &str,
        query: &Query,
        body: &[u8],
        repr: Representation,
    ) -> ApiResult<Response> {
        let def: &ResourceDef = &target.def;
        let gr = def.group_resource();
        let sub = target.subresource.clone();
        if matches!(sub.as_deref(), Some(s) if s != "status") {
            return Err(ApiError::unsupported_media_type(fieldmanager::APPLY_PATCH));
        }
        let mode = crate::typed::FieldValidation::parse(
            query.field_validation.as_deref(),
            "PatchOptions",
        )?;
        let mut config = fieldmanager::decode_apply_body(body)?;
        fieldmanager::check_applied(def, &config, name, target.namespace.as_deref())?;
        // The applied configuration is validated like a patch result: unknown
        // fields fail under Strict, warn under Warn, and are never stored.
        let raw = body.trim_ascii_start().starts_with(b"{").then_some(body);
        crate::typed::check(
            &target.def,
            mode,
            raw,
            &mut config,
            crate::typed::Source::Patch,
        )?;
        if meta::name(&config).is_empty() {
            meta::metadata_mut(&mut config).insert("name".into(), name.into());
        }
        let manager = query.field_manager.clone().unwrap_or_default();
        let force = query.force.unwrap_or(false);
        let precondition = meta::resource_version(&config).to_string();
        let allow_create = sub.is_none();
        let (obj, created) = self
            .guaranteed_update(target, name, allow_create, query.dry_run, |old| {
                let Some(old) = old else {
                    return fieldmanager::apply(def, None, None, &config, &manager, force);
                };
                if !precondition.is_empty() && precondition != meta::resource_version(old) {
                    return Err(ApiError::modified(&gr, name));
                }
                let merged =
                    fieldmanager::apply(def, sub.as_deref(), Some(old), &config, &manager, force)?;
                let managed = merged.pointer("/metadata/managedFields").cloned();
                let mut new = requested_update(def, sub.as_deref(), old, merged)?;
                // The status rules start from the stored object: carry the
                // new entries over.
                let md = meta::metadata_mut(&mut new);
                match managed {
                    Some(m) => md.insert("managedFields".into(), m),
                    None => md.remove("managedFields"),
                };
                Ok(new)
            })
            .await?;
        let code = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(self.render_one(&target.def, code, &obj, repr, query))
    }
}
