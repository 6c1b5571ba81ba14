//! Bulk import of events into a tenant: a streaming NDJSON body of Segment
//! messages (see `ingest::import`), or a CSV file with a column mapping in
//! the query string (see `ingest::csv_import`).

use axum::{
    Json,
    body::Body,
    extract::{FromRequestParts, Request, State},
};
use chrono::Utc;
use northstar_db::{memberships::Role, tenants};

use super::{
    error::{ApiError, FieldError, Problem},
    extract_json::ApiQuery,
    tenant_scope::TenantScope,
};
use crate::{
    ingest::{
        csv_import::{self, CsvImportError, CsvMapping},
        import::{self, ImportError, ImportFailure, ImportReport, Importer},
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
    scope: TenantScope,
    body: Body,
) -> Result<Json<ImportReport>, ApiError> {
    let receipt = import_receipt(scope).await?;
    let importer = Importer::new(&state.ingest.pipeline, receipt);
    let report = import::ndjson(importer, body.into_data_stream(), |_| {})
        .await
        .map_err(import_failed)?;
    Ok(Json(report))
}

/// Import events from CSV (editors and above).
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/events/import/csv", tag = "ingestion",
    description = "A CSV file whose first line names the columns; the query string maps them \
                   to message fields, and the other columns become properties (traits for \
                   identify and group). Each row becomes one message of `type`, validated like \
                   any other: rows over 32 KB, and invalid rows, are reported by line number \
                   (the header is line 1), naming the column at fault; the others are stored. \
                   Streamed: the body may be tens of megabytes. A row without a message id gets \
                   one derived from its text, so re-importing a file stores nothing twice. A \
                   mapping that does not fit the header row is refused before any row is read.",
    params(("slug" = String, Path, description = "Tenant slug"), CsvMapping),
    request_body(content = String, content_type = "text/csv"),
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, description = "Every valid row is stored", body = ImportReport),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, description = "The mapping does not fit the header row: `errors` names each parameter at fault", body = Problem),
        (status = 503, description = "Storage failed part-way; rows before `detail`'s count are stored", body = Problem),
    )
)]
pub async fn csv(
    State(state): State<AppState>,
    scope: TenantScope,
    request: Request,
) -> Result<Json<ImportReport>, ApiError> {
    let receipt = import_receipt(scope).await?;
    // The mapping is read after the role check, so a viewer hears 403
    // whatever the query string says.
    let (mut parts, body) = request.into_parts();
    let ApiQuery(mapping) = ApiQuery::<CsvMapping>::from_request_parts(&mut parts, &state).await?;
    let importer = Importer::new(&state.ingest.pipeline, receipt);
    let report = csv_import::csv(importer, &mapping, body.into_data_stream(), |_| {})
        .await
        .map_err(|err| match err {
            CsvImportError::Mapping(errors) => ApiError::Validation(
                errors
                    .into_iter()
                    .map(|e| FieldError::new(e.parameter, e.reason))
                    .collect(),
            ),
            CsvImportError::Import(err) => import_failed(err),
        })?;
    Ok(Json(report))
}

/// Checks that the caller may import (editors and above) and returns the
/// receipt rows are validated against.
async fn import_receipt(mut scope: TenantScope) -> Result<Receipt, ApiError> {
    scope.require(Role::Editor)?;
    let retention_days = tenants::current(&mut scope.tx).await?.event_retention_days;
    let tenant_id = scope.tx.tenant_id();
    // The import writes through the pipeline, not this transaction: end it
    // now rather than hold a connection idle for the whole upload.
    drop(scope);
    Ok(Receipt {
        tenant_id,
        received_at: Utc::now(),
        retention_days,
        // The uploader's address says nothing about the events' users.
        client_ip: None,
    })
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
