//! Billing data in bulk: customers, plans or invoice lines as CSV, each row
//! validated like its JSON counterpart, valid rows stored, refused rows
//! reported with their line number, field and reason.

use super::*;

/// What a CSV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingCsvKind {
    /// One customer per row.
    Customers,
    /// One plan per row.
    Plans,
    /// One line item per row; consecutive rows of the same invoice form it.
    Invoices,
}

impl BillingCsvKind {
    fn name(self) -> &'static str {
        match self {
            BillingCsvKind::Customers => "customers",
            BillingCsvKind::Plans => "plans",
            BillingCsvKind::Invoices => "invoices",
        }
    }

    /// Every column a file of this kind may have, in documentation order.
    fn columns(self) -> &'static [&'static str] {
        match self {
            BillingCsvKind::Customers => &[
                "external_id",
                "name",
                "email",
                "company",
                "country",
                "user_id",
                "lead_created_at",
                "free_trial_started_at",
            ],
            BillingCsvKind::Plans => &["external_id", "name", "interval_unit", "interval_count"],
            BillingCsvKind::Invoices => &[
                "invoice_external_id",
                "customer_external_id",
                "date",
                "currency",
                "type",
                "subscription_external_id",
                "plan_external_id",
                "service_period_start",
                "service_period_end",
                "quantity",
                "amount_in_cents",
                "discount_amount_in_cents",
                "tax_amount_in_cents",
                "prorated",
                "description",
            ],
        }
    }

    /// The columns the header must name.
    fn required_columns(self) -> &'static [&'static str] {
        match self {
            BillingCsvKind::Customers => &["external_id"],
            BillingCsvKind::Plans => &["external_id", "name", "interval_unit", "interval_count"],
            BillingCsvKind::Invoices => &[
                "invoice_external_id",
                "customer_external_id",
                "date",
                "currency",
                "type",
                "amount_in_cents",
            ],
        }
    }
}

/// What to import.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `customers`, `plans` or `invoices` (required).
    pub kind: Option<BillingCsvKind>,
}

/// One refused row of a CSV import.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct RejectedRow {
    /// The row's first line in the file (the header is line 1).
    pub line: u64,
    /// The column at fault (`row` when the row itself is malformed).
    pub field: String,
    /// Why the row was refused.
    pub reason: String,
}

/// What a CSV import stored and refused. Every data row is either counted
/// in `imported` or refused (`rejected_total`).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct BillingImportReport {
    /// Rows stored (for invoices: line-item rows).
    pub imported: u64,
    /// The first 1000 refused rows, in file order, each with the first
    /// problem found in it.
    pub rejected: Vec<RejectedRow>,
    /// Rows refused, listed or not.
    pub rejected_total: u64,
}

/// Imports billing data from CSV (owners and admins).
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/billing/import/csv", tag = "billing",
    description = "A CSV file (RFC 4180, UTF-8, at most 10 MiB) whose first line names its \
                   columns. `kind=customers`: `external_id,name,email,company,country,user_id,\
                   lead_created_at,free_trial_started_at`. `kind=plans`: `external_id,name,\
                   interval_unit,interval_count`. `kind=invoices`, one row per line item: \
                   `invoice_external_id,customer_external_id,date,currency,type,\
                   subscription_external_id,plan_external_id,service_period_start,\
                   service_period_end,quantity,amount_in_cents,discount_amount_in_cents,\
                   tax_amount_in_cents,prorated,description`; consecutive rows with the same \
                   invoice id form one invoice. Optional columns may be left out; an empty cell \
                   is an absent value. Rows are validated like the JSON endpoints; valid rows \
                   are stored (as upserts), each refused row is reported with its line number \
                   and column, and an invoice with a refused row is refused whole. Everything \
                   is stored, and revenue recomputed, in one transaction.",
    params(("slug" = String, Path, description = "Tenant slug"), ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, description = "Valid rows are stored, even when others are refused", body = BillingImportReport),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, description = "The file is over 10 MiB", body = Problem),
        (status = 422, description = "`kind` is missing or unknown, or the header is missing, \
                                      names an unknown column, repeats one or lacks a required one", body = Problem),
    )
)]
pub async fn import_csv(
    State(state): State<AppState>,
    scope: TenantScope,
    request: Request,
) -> Result<Json<BillingImportReport>, ApiError> {
    scope.require(Role::Admin)?;
    // The query is read after the role check, so a viewer hears 403
    // whatever the query string says.
    let (mut parts, body) = request.into_parts();
    let ApiQuery(query) = ApiQuery::<ImportQuery>::from_request_parts(&mut parts, &state).await?;
    let kind = query
        .kind
        .ok_or_else(|| ApiError::field("kind", "is required: customers, plans or invoices"))?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_CSV_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_CSV_BYTES,
        });
    }
    // The upload may be slow: hold no connection (idle in a transaction)
    // while it arrives, and open the import's transaction once it is in.
    let TenantScope { tx, actor, .. } = scope;
    let tenant_id = tx.tenant_id();
    drop(tx);
    let bytes = read_body(body).await?;
    let mut tx = TenantTx::begin(&state.pool, tenant_id).await?;
    let mut records = CsvRecords::new(&bytes);
    let header = records.next().ok_or_else(|| {
        ApiError::field(
            "header",
            "is missing: the file is empty; its first line must name the columns",
        )
    })?;
    let columns = Columns::resolve(kind, &header)?;
    let mut import = CsvImport::default();
    match kind {
        BillingCsvKind::Customers => import.customers(&mut tx, &columns, records).await?,
        BillingCsvKind::Plans => import.plans(&mut tx, &columns, records).await?,
        BillingCsvKind::Invoices => import.invoices(&mut tx, &columns, records).await?,
    }
    rollup::recompute_customers(&mut tx, &std::mem::take(&mut import.affected)).await?;
    rollup::recount_trials(&mut tx, &std::mem::take(&mut import.trials)).await?;
    let report = import.report;
    audit::record(
        &mut tx,
        &actor,
        "billing.csv.imported",
        Some(kind.name()),
        json!({ "imported": report.imported, "rejected": report.rejected_total }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(report))
}

/// The whole body, refused with 413 past [`MAX_CSV_BYTES`].
async fn read_body(body: Body) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            ApiError::field("body", format!("could not be read to its end: {err}"))
        })?;
        if bytes.len() + chunk.len() > MAX_CSV_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_CSV_BYTES,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// One CSV record.
struct CsvRecord {
    /// Its first line, from 1.
    line: u64,
    /// Its fields, unquoted; `None` where a field is not UTF-8.
    fields: Vec<Option<String>>,
}

/// The records of a CSV file held in memory, parsed with `csv_core`
/// (which skips blank lines and a UTF-8 byte-order mark).
struct CsvRecords<'a> {
    input: &'a [u8],
    position: usize,
    /// Line feeds before `position`.
    line_feeds: u64,
    parser: Reader,
    output: Vec<u8>,
    ends: Vec<usize>,
}

impl<'a> CsvRecords<'a> {
    fn new(input: &'a [u8]) -> Self {
        CsvRecords {
            input,
            position: 0,
            line_feeds: 0,
            parser: Reader::new(),
            output: vec![0; 4096],
            ends: vec![0; 64],
        }
    }

    fn advance(&mut self, bytes: usize) {
        let end = self.position + bytes;
        let consumed = &self.input[self.position..end];
        self.line_feeds += consumed.iter().filter(|&&b| b == b'\n').count() as u64;
        self.position = end;
    }

    fn next(&mut self) -> Option<CsvRecord> {
        // The parser skips blank lines; skip them here first so that the
        // record's line is that of its first byte.
        let blank = self.input[self.position..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        self.advance(blank);
        let line = self.line_feeds + 1;
        let (mut written, mut ended) = (0, 0);
        loop {
            let (result, read, out, ends) = self.parser.read_record(
                &self.input[self.position..],
                &mut self.output[written..],
                &mut self.ends[ended..],
            );
            self.advance(read);
            written += out;
            ended += ends;
            match result {
                // At the end of the input, the next call (with nothing)
                // finishes the last record.
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    let size = self.output.len() * 2;
                    self.output.resize(size, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let size = self.ends.len() * 2;
                    self.ends.resize(size, 0);
                }
                ReadRecordResult::Record => break,
                ReadRecordResult::End => return None,
            }
        }
        let mut start = 0;
        let fields = self.ends[..ended]
            .iter()
            .map(|&end| {
                let field = String::from_utf8(self.output[start..end].to_vec()).ok();
                start = end;
                field
            })
            .collect();
        Some(CsvRecord { line, fields })
    }
}

impl Iterator for CsvRecords<'_> {
    type Item = CsvRecord;

    fn next(&mut self) -> Option<CsvRecord> {
        CsvRecords::next(self)
    }
}

/// Where each known column is in the file.
struct Columns {
    index: HashMap<&'static str, usize>,
    width: usize,
}

impl Columns {
    fn resolve(kind: BillingCsvKind, header: &CsvRecord) -> Result<Self, ApiError> {
        let known = kind.columns();
        let mut errors = Vec::new();
        let mut index = HashMap::new();
        for (i, name) in header.fields.iter().enumerate() {
            let Some(name) = name.as_deref().map(str::trim) else {
                errors.push(FieldError::new("header", "is not valid UTF-8 text"));
                continue;
            };
            match known.iter().find(|k| **k == name) {
                Some(column) => {
                    if index.insert(*column, i).is_some() {
                        errors.push(FieldError::new(
                            "header",
                            format!("names the column {name:?} twice"),
                        ));
                    }
                }
                None => errors.push(FieldError::new(
                    "header",
                    format!(
                        "names the unknown column {name:?}; a {} file has the columns {}",
                        kind.name(),
                        known.join(",")
                    ),
                )),
            }
        }
        for column in kind.required_columns() {
            if !index.contains_key(column) {
                errors.push(FieldError::new(
                    "header",
                    format!("lacks the required column {column:?}"),
                ));
            }
        }
        invalid_if_any(errors)?;
        Ok(Columns {
            index,
            width: header.fields.len(),
        })
    }

    /// A reader of `record`'s cells, or the refusal of a row whose width is
    /// not the header's.
    fn row<'r>(&'r self, record: &'r CsvRecord) -> Result<Row<'r>, RejectedRow> {
        if record.fields.len() != self.width {
            return Err(RejectedRow {
                line: record.line,
                field: "row".into(),
                reason: format!(
                    "has {} fields; the header names {} columns",
                    record.fields.len(),
                    self.width
                ),
            });
        }
        Ok(Row {
            columns: self,
            record,
            errors: Vec::new(),
        })
    }
}

/// Typed cells of one row; each problem is noted in `errors`.
struct Row<'r> {
    columns: &'r Columns,
    record: &'r CsvRecord,
    errors: Vec<FieldError>,
}

impl Row<'_> {
    /// Whether the column is absent or its cell empty.
    fn is_blank(&self, column: &'static str) -> bool {
        self.columns
            .index
            .get(column)
            .is_none_or(|&i| self.record.fields[i].as_deref() == Some(""))
    }

    /// Notes that `column` is required when its cell is blank.
    fn require(&mut self, column: &'static str) {
        if self.is_blank(column) {
            self.errors.push(FieldError::new(column, "is required"));
        }
    }

    /// The cell of `column`; `None` when the column is absent or the cell empty.
    fn text(&mut self, column: &'static str) -> Option<String> {
        let i = *self.columns.index.get(column)?;
        match &self.record.fields[i] {
            Some(text) if text.is_empty() => None,
            Some(text) => Some(text.clone()),
            None => {
                self.errors
                    .push(FieldError::new(column, "is not valid UTF-8 text"));
                None
            }
        }
    }

    fn required(&mut self, column: &'static str) -> String {
        self.require(column);
        self.text(column).unwrap_or_default()
    }

    fn parsed<T>(
        &mut self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
        expected: &str,
    ) -> Option<T> {
        let text = self.text(column)?;
        let value = parse(&text);
        if value.is_none() {
            self.errors.push(FieldError::new(column, expected));
        }
        value
    }

    fn time(&mut self, column: &'static str) -> Option<DateTime<Utc>> {
        self.parsed(
            column,
            parse_time,
            "must be an RFC 3339 time (2026-01-31T09:30:00Z) or a date (2026-01-31, midnight UTC)",
        )
    }

    fn integer<T: std::str::FromStr>(&mut self, column: &'static str, expected: &str) -> Option<T> {
        self.parsed(column, |t| t.parse().ok(), expected)
    }

    fn amount(&mut self, column: &'static str) -> Option<i64> {
        self.integer(
            column,
            "must be a whole number of minor units that fits in a signed 64-bit integer",
        )
    }

    /// The first problem, as the row's refusal.
    fn refusal(&mut self, more: Vec<FieldError>) -> Option<RejectedRow> {
        self.errors.extend(more);
        self.errors.first().map(|first| RejectedRow {
            line: self.record.line,
            field: first.field.clone(),
            reason: first.reason.clone(),
        })
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|day| day.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "TRUE" | "True" => Some(true),
        "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn parse_line_kind(text: &str) -> Option<LineKind> {
    match text {
        "subscription" => Some(LineKind::Subscription),
        "one_time" => Some(LineKind::OneTime),
        _ => None,
    }
}

/// An invoice row: the invoice's fields and one line item.
struct InvoiceRow {
    line: u64,
    customer_external_id: String,
    date: DateTime<Utc>,
    currency: String,
    item: LineInput,
}

/// The rows of one invoice as read: each valid or refused.
struct InvoiceGroup {
    external_id: String,
    rows: Vec<Result<InvoiceRow, RejectedRow>>,
}

/// A CSV import in progress.
#[derive(Default)]
struct CsvImport {
    report: BillingImportReport,
    /// Customers whose revenue may have changed.
    affected: Vec<Uuid>,
    /// Customers whose trial start may have changed.
    trials: Vec<Uuid>,
}

impl CsvImport {
    fn reject(&mut self, row: RejectedRow) {
        self.report.rejected_total += 1;
        if self.report.rejected.len() < MAX_REPORTED_REJECTIONS {
            self.report.rejected.push(row);
        }
    }

    async fn customers(
        &mut self,
        tx: &mut TenantTx,
        columns: &Columns,
        records: CsvRecords<'_>,
    ) -> Result<(), ApiError> {
        for record in records {
            let mut row = match columns.row(&record) {
                Ok(row) => row,
                Err(refusal) => {
                    self.reject(refusal);
                    continue;
                }
            };
            let input = CustomerInput {
                external_id: row.required("external_id"),
                name: row.text("name"),
                email: row.text("email"),
                company: row.text("company"),
                country: row.text("country"),
                user_id: row.text("user_id"),
                attributes: serde_json::Map::new(),
                lead_created_at: row.time("lead_created_at"),
                free_trial_started_at: row.time("free_trial_started_at"),
            };
            if let Some(refusal) = row.refusal(check_customer(&input)) {
                self.reject(refusal);
                continue;
            }
            let customer = customers::upsert(tx, &input).await?;
            self.trials.push(customer.id);
            self.report.imported += 1;
        }
        Ok(())
    }

    async fn plans(
        &mut self,
        tx: &mut TenantTx,
        columns: &Columns,
        records: CsvRecords<'_>,
    ) -> Result<(), ApiError> {
        let mut stored = BTreeSet::new();
        for record in records {
            let mut row = match columns.row(&record) {
                Ok(row) => row,
                Err(refusal) => {
                    self.reject(refusal);
                    continue;
                }
            };
            let external_id = row.required("external_id");
            let name = row.required("name");
            let interval_unit = row.required("interval_unit");
            row.require("interval_count");
            let interval_count = row
                .integer(
                    "interval_count",
                    "must be a whole number between 1 and 1000",
                )
                .unwrap_or(1);
            let input = PlanInput {
                external_id,
                name,
                interval_unit,
                interval_count,
            };
            if let Some(refusal) = row.refusal(check_plan(&input)) {
                self.reject(refusal);
                continue;
            }
            stored.insert(plans::upsert(tx, &input).await?.id);
            self.report.imported += 1;
        }
        for plan in stored {
            self.affected
                .extend(invoices::customers_on_plan(tx, plan).await?);
        }
        Ok(())
    }

    async fn invoices(
        &mut self,
        tx: &mut TenantTx,
        columns: &Columns,
        records: CsvRecords<'_>,
    ) -> Result<(), ApiError> {
        // Invoice id → its first line, to refuse an invoice split apart.
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut group: Option<InvoiceGroup> = None;
        for record in records {
            let (external_id, row) = invoice_row(columns, &record);
            let same = group
                .as_ref()
                .is_some_and(|g| !external_id.is_empty() && g.external_id == external_id);
            if !same {
                if let Some(done) = group.take() {
                    self.invoice(tx, done, &mut seen).await?;
                }
                group = Some(InvoiceGroup {
                    external_id,
                    rows: Vec::new(),
                });
            }
            if let Some(group) = group.as_mut() {
                group.rows.push(row);
            }
        }
        if let Some(done) = group.take() {
            self.invoice(tx, done, &mut seen).await?;
        }
        Ok(())
    }

    /// Refuses every row of an invoice: the invalid ones with their own
    /// problem, the others with `reason`, on `invoice_external_id`.
    fn refuse_invoice(&mut self, rows: Vec<Result<InvoiceRow, RejectedRow>>, reason: &str) {
        for row in rows {
            match row {
                Err(refusal) => self.reject(refusal),
                Ok(row) => self.reject(RejectedRow {
                    line: row.line,
                    field: "invoice_external_id".into(),
                    reason: reason.to_owned(),
                }),
            }
        }
    }

    /// Stores one invoice, or refuses all its rows.
    async fn invoice(
        &mut self,
        tx: &mut TenantTx,
        group: InvoiceGroup,
        seen: &mut HashMap<String, u64>,
    ) -> Result<(), ApiError> {
        let InvoiceGroup {
            external_id,
            mut rows,
        } = group;
        let line_of = |row: &Result<InvoiceRow, RejectedRow>| match row {
            Ok(row) => row.line,
            Err(refusal) => refusal.line,
        };
        let first_line = rows.first().map_or(0, line_of);
        if !external_id.is_empty() {
            // Storing it again would replace the first part with this one.
            if let Some(earlier) = seen.get(&external_id) {
                let reason = format!(
                    "invoice {external_id:?} also has rows from line {earlier}; the rows of an \
                     invoice must be consecutive"
                );
                for row in rows {
                    self.reject(RejectedRow {
                        line: line_of(&row),
                        field: "invoice_external_id".into(),
                        reason: reason.clone(),
                    });
                }
                return Ok(());
            }
            seen.insert(external_id.clone(), first_line);
        }
        if rows.len() > MAX_LINE_ITEMS {
            let reason = format!(
                "the invoice is not stored: it has {} line items; the limit is 500",
                rows.len()
            );
            self.refuse_invoice(rows, &reason);
            return Ok(());
        }
        // The invoice's own fields come from its first row; the others must agree.
        if let Some(Ok(head)) = rows.first() {
            let (customer, date, currency) = (
                head.customer_external_id.clone(),
                head.date,
                head.currency.clone(),
            );
            for row in rows.iter_mut().skip(1) {
                let Ok(valid) = row else { continue };
                let differs = if valid.customer_external_id != customer {
                    Some("customer_external_id")
                } else if valid.date != date {
                    Some("date")
                } else if valid.currency != currency {
                    Some("currency")
                } else {
                    None
                };
                if let Some(field) = differs {
                    *row = Err(RejectedRow {
                        line: valid.line,
                        field: field.into(),
                        reason: format!("differs from the invoice's first row (line {first_line})"),
                    });
                }
            }
        }
        if let Some(bad) = rows.iter().find_map(|r| r.as_ref().err().map(|e| e.line)) {
            let reason = format!("the invoice is not stored: its row on line {bad} is invalid");
            self.refuse_invoice(rows, &reason);
            return Ok(());
        }
        let rows: Vec<InvoiceRow> = rows.into_iter().filter_map(Result::ok).collect();
        let Some(head) = rows.first() else {
            return Ok(());
        };
        let input = InvoiceInput {
            external_id,
            customer_external_id: head.customer_external_id.clone(),
            date: head.date,
            currency: head.currency.clone(),
            line_items: rows.iter().map(|r| r.item.clone()).collect(),
        };
        let head_line = head.line;
        // Unknown customers and plans are found before anything is written,
        // so the transaction goes on after them.
        let (field, reason, at) = match invoices::upsert(tx, &input, "csv").await {
            Ok(stored) => {
                self.affected.extend(stored.customers);
                self.report.imported += rows.len() as u64;
                return Ok(());
            }
            Err(BillingError::UnknownCustomer(id)) => (
                "customer_external_id",
                format!("no customer with external id {id:?}; import it first"),
                head_line,
            ),
            Err(BillingError::UnknownPlan { line, plan }) => (
                "plan_external_id",
                format!("no plan with external id {plan:?}; import it first"),
                rows.get(line).map_or(head_line, |r| r.line),
            ),
            Err(BillingError::Db(err)) => return Err(err.into()),
        };
        let rows = rows
            .into_iter()
            .map(|row| {
                if row.line == at {
                    Err(RejectedRow {
                        line: at,
                        field: field.into(),
                        reason: reason.clone(),
                    })
                } else {
                    Ok(row)
                }
            })
            .collect();
        let reason = format!("the invoice is not stored: its row on line {at} is invalid");
        self.refuse_invoice(rows, &reason);
        Ok(())
    }
}

/// An invoice row's invoice id (empty when absent) and the row, or why it
/// is refused.
fn invoice_row(columns: &Columns, record: &CsvRecord) -> (String, Result<InvoiceRow, RejectedRow>) {
    let mut row = match columns.row(record) {
        Ok(row) => row,
        Err(refusal) => {
            // A malformed row still belongs to the invoice it names, if any.
            let id = columns
                .index
                .get("invoice_external_id")
                .and_then(|&i| record.fields.get(i))
                .and_then(Clone::clone)
                .unwrap_or_default();
            return (id, Err(refusal));
        }
    };
    let external_id = row.required("invoice_external_id");
    let customer_external_id = row.required("customer_external_id");
    row.require("date");
    let date = row.time("date");
    let currency = row.required("currency");
    row.require("type");
    let kind = row.parsed("type", parse_line_kind, "must be subscription or one_time");
    row.require("amount_in_cents");
    let item = LineInput {
        external_id: None,
        kind: kind.unwrap_or(LineKind::OneTime),
        subscription_external_id: row.text("subscription_external_id"),
        plan_external_id: row.text("plan_external_id"),
        service_period_start: row.time("service_period_start"),
        service_period_end: row.time("service_period_end"),
        quantity: row
            .integer("quantity", "must be a whole number, 0 or more")
            .unwrap_or(1),
        amount_in_cents: row.amount("amount_in_cents").unwrap_or_default(),
        discount_amount_in_cents: row.amount("discount_amount_in_cents").unwrap_or_default(),
        tax_amount_in_cents: row.amount("tax_amount_in_cents").unwrap_or_default(),
        prorated: row
            .parsed("prorated", parse_bool, "must be true or false")
            .unwrap_or_default(),
        description: row.text("description"),
    };
    let mut problems = Vec::new();
    check_external_id(&external_id, "invoice_external_id", &mut problems);
    check_external_id(&customer_external_id, "customer_external_id", &mut problems);
    check_currency(&currency, "currency", &mut problems);
    check_line(&item, "", &mut problems);
    let parsed = match (row.refusal(problems), date) {
        (None, Some(date)) => Ok(InvoiceRow {
            line: record.line,
            customer_external_id,
            date,
            currency,
            item,
        }),
        (Some(refusal), _) => Err(refusal),
        // A blank date was noted as a problem above.
        (None, None) => Err(RejectedRow {
            line: record.line,
            field: "date".into(),
            reason: "is required".into(),
        }),
    };
    (external_id, parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<(u64, Vec<String>)> {
        CsvRecords::new(text.as_bytes())
            .map(|r| {
                (
                    r.line,
                    r.fields
                        .into_iter()
                        .map(|f| f.unwrap_or_default())
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn records_carry_their_first_line() {
        let parsed = records("\u{feff}a,b\r\n\r\n1,\"two\nlines\"\n\n3,4");
        assert_eq!(
            parsed,
            [
                (1, vec!["a".to_owned(), "b".to_owned()]),
                (3, vec!["1".to_owned(), "two\nlines".to_owned()]),
                (6, vec!["3".to_owned(), "4".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_long_field_grows_the_buffers() {
        let long = "x".repeat(10_000);
        let fields = (0..100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let parsed = records(&format!("{long}\n{fields}\n"));
        assert_eq!(parsed[0].1[0].len(), 10_000);
        assert_eq!(parsed[1].1.len(), 100);
        assert_eq!(parsed[1].0, 2);
    }

    #[test]
    fn times_are_rfc_3339_or_dates() {
        assert_eq!(
            parse_time("2026-01-31").map(|t| t.to_rfc3339()),
            Some("2026-01-31T00:00:00+00:00".to_owned())
        );
        assert_eq!(
            parse_time("2026-01-31T10:00:00+01:00").map(|t| t.to_rfc3339()),
            Some("2026-01-31T09:00:00+00:00".to_owned())
        );
        assert_eq!(parse_time("31/01/2026"), None);
    }
}
