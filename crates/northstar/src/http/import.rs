//! Bulk import of events into a tenant: a streaming NDJSON body of Segment
//! messages (see `ingest::import`).

use axum::{Json, body::Body, extract::State};
use chrono::Utc;
use northstar_db::{memberships::Role, tenants};

use super::{
    caller::ClientAddress,
    error::{ApiError, Problem},
    tenant_scope::TenantScope,
};
use crate::{
    ingest::{
        import::{self, ImportError, ImportFailure, ImportReport},
        message::Receipt,
        pipeline::PipelineError,
    },
    state::AppState,
};

/// Import events from NDJSON (editors and above).
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/events/import", tag = "ingestion",
    description = "One Segment message (with its `type`) per line, streamed: the body may be \
                   tens of megabytes and is never held in memory whole. Lines over 32 KB, and \
                   invalid lines, are reported by line number; the others are stored. A line \
                   without `messageId` gets one derived from its text, so re-importing a file \
                   stores nothing twice. Uncompressed bodies only.",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body(content = String, content_type = "application/x-ndjson"),
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, description = "Every valid line is stored", body = ImportReport),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, description = "Storage failed part-way; lines before `detail`'s count are stored", body = Problem),
    )
)]
pub async fn ndjson(
    State(state): State<AppState>,
    client: ClientAddress,
    mut scope: TenantScope,
    body: Body,
) -> Result<Json<ImportReport>, ApiError> {
    scope.require(Role::Editor)?;
    let retention_days = tenants::event_retention_days(&mut scope.tx).await?;
    let tenant_id = scope.tx.tenant_id();
    // The import writes through the pipeline, not this transaction: end it
    // now rather than hold a connection idle for the whole upload.
    drop(scope);
    let receipt = Receipt {
        tenant_id,
        received_at: Utc::now(),
        retention_days,
        client_ip: client.0,
    };
    let report = import::ndjson(
        &state.ingest.pipeline,
        receipt,
        body.into_data_stream(),
        |_| {},
    )
    .await
    .map_err(import_failed)?;
    Ok(Json(report))
}

/// A failed import: a storage failure is a 503 (retrying the whole file is
/// safe), a broken upload a 400; both say how many lines were committed.
pub fn import_failed(err: ImportError) -> ApiError {
    tracing::warn!(error = %err, "import stopped");
    match err.source {
        ImportFailure::Read(_) => ApiError::MalformedJson(err.to_string()),
        ImportFailure::Store(PipelineError::Full | PipelineError::Closed) => ApiError::Overloaded {
            retry_after: std::time::Duration::from_secs(5),
        },
        ImportFailure::Store(_) => ApiError::Unavailable(Box::new(err)),
    }
}
