//! `dossier import FILE.csv`: bulk onboarding of customers from a CSV file.
//!
//! Every row goes through [`Service::register`], like `POST /v1/customers`:
//! the same validation, sealing and duplicate detection. The import acts as
//! one principal (a service principal unless `--as` names an existing one)
//! and sends each row with an Idempotency-Key derived from its `external_id`,
//! so re-running a file writes nothing twice: a row already imported is
//! answered from the stored result, and a row whose external_id was imported
//! with other content is refused as an idempotency mismatch.
//!
//! The whole file is read and parsed before anything is written: a
//! malformed file or header writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dossier_domain::{CustomerKind, Field};
use dossier_service::{authorize, Action, RegisterInput, Service, ServiceError, WriteMeta};
use dossier_store::{Keyring, Principal, Role, Store};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::csv_file::{self, Record};
use crate::progress::Progress;

/// The principal an import acts as unless `--as` says otherwise.
pub const IMPORT_PRINCIPAL: &str = "dossier-import";
/// Exit code when some rows were not imported.
pub const EXIT_ROWS_FAILED: u8 = 3;
/// Longest accepted external_id (it becomes part of an idempotency key).
const MAX_EXTERNAL_ID: usize = 200;
/// Identifier fields that make two files duplicates (as the service checks them).
const IDENTIFIERS: [Field; 4] = [
    Field::Phone,
    Field::Email,
    Field::CreditCode,
    Field::NationalId,
];

/// Columns other than the detail fields.
const KIND: &str = "kind";
const EXTERNAL_ID: &str = "external_id";
const OWNER: &str = "owner";
const TAGS: &str = "tags";

#[derive(Clone, Debug)]
pub struct Options {
    pub file: PathBuf,
    /// Principal name to act as.
    pub principal: String,
    pub force_duplicates: bool,
    /// Rows in flight at once.
    pub concurrency: usize,
}

/// What the header says each column is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Column {
    Kind,
    ExternalId,
    Owner,
    Tags,
    Detail(Field),
    /// A column the import does not know; a row with a value in it fails,
    /// so that no value is dropped silently.
    Unknown(String),
}

fn column(name: &str) -> Column {
    match name {
        KIND => Column::Kind,
        EXTERNAL_ID => Column::ExternalId,
        OWNER => Column::Owner,
        TAGS => Column::Tags,
        other => {
            Field::parse(other).map_or_else(|| Column::Unknown(other.to_owned()), Column::Detail)
        }
    }
}

fn known_columns() -> String {
    let mut names = vec![KIND, EXTERNAL_ID, OWNER, TAGS];
    names.extend(Field::ALL.iter().map(|f| f.as_str()));
    names.join(", ")
}

/// The header row, checked: names are unique, `kind` and `external_id` present.
fn columns(header: &Record) -> Result<Vec<Column>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in &header.fields {
        let name = name.trim();
        if name.is_empty() {
            bail!("the header (row 1) has an empty column name");
        }
        if !seen.insert(name) {
            bail!("the header (row 1) names column {name:?} twice");
        }
        out.push(column(name));
    }
    for required in [KIND, EXTERNAL_ID] {
        if !seen.contains(required) {
            bail!(
                "the header (row 1) has no {required:?} column; known columns: {}",
                known_columns()
            );
        }
    }
    Ok(out)
}

/// One row's content as the import sends it (and digests it for idempotency).
#[derive(Clone, Debug, Serialize)]
struct Customer {
    kind: String,
    details: BTreeMap<String, String>,
    owner: Option<String>,
    tags: Vec<String>,
}

#[derive(Clone, Debug)]
struct Row {
    row: usize,
    line: usize,
    external_id: String,
    customer: Customer,
}

/// Why a row was not imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub row: usize,
    pub line: usize,
    pub external_id: String,
    /// The column the problem is in (empty when it is the row as a whole).
    pub column: String,
    pub reason: String,
}

/// Turns a record into a row, or the reasons it cannot be one.
fn read_row(columns: &[Column], r: &Record) -> std::result::Result<Row, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut external_id = String::new();
    let mut customer = Customer {
        kind: String::new(),
        details: BTreeMap::new(),
        owner: None,
        tags: Vec::new(),
    };
    for (i, raw) in r.fields.iter().enumerate() {
        let value = raw.trim();
        let Some(col) = columns.get(i) else {
            if !value.is_empty() {
                errors.push((
                    format!("{}", i + 1),
                    format!(
                        "cell {} has no column: the header has {} columns",
                        i + 1,
                        columns.len()
                    ),
                ));
            }
            continue;
        };
        if value.is_empty() {
            continue;
        }
        match col {
            Column::Kind => customer.kind = value.to_owned(),
            Column::ExternalId => external_id = value.to_owned(),
            Column::Owner => customer.owner = Some(value.to_owned()),
            Column::Tags => {
                let tags: BTreeSet<String> = value
                    .split(';')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
                customer.tags = tags.into_iter().collect();
            }
            Column::Detail(f) => {
                customer
                    .details
                    .insert(f.as_str().to_owned(), value.to_owned());
            }
            Column::Unknown(name) => errors.push((
                name.clone(),
                format!("unknown column; known columns: {}", known_columns()),
            )),
        }
    }
    if external_id.is_empty() {
        errors.insert(
            0,
            (
                EXTERNAL_ID.to_owned(),
                "is required: it identifies the row when the file is imported again".to_owned(),
            ),
        );
    } else if external_id.chars().count() > MAX_EXTERNAL_ID {
        errors.push((
            EXTERNAL_ID.to_owned(),
            format!("must be at most {MAX_EXTERNAL_ID} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(Row {
            row: r.row,
            line: r.line,
            external_id,
            customer,
        })
    } else {
        Err(errors
            .into_iter()
            .map(|(column, reason)| RowError {
                row: r.row,
                line: r.line,
                external_id: external_id.clone(),
                column,
                reason,
            })
            .collect())
    }
}

/// The row's identifiers (normalised as the service stores them), if all
/// its detail fields are valid. Rows with invalid fields claim nothing: the
/// service will refuse them anyway.
fn identifiers(c: &Customer, today: chrono::NaiveDate) -> Option<Vec<(Field, String)>> {
    let kind = CustomerKind::parse(&c.kind)?;
    let mut out = Vec::new();
    for (name, raw) in &c.details {
        let f = Field::parse(name)?;
        if !f.applies_to(kind) {
            return None;
        }
        let v = f.parse_value(kind, raw, today).ok()?;
        if IDENTIFIERS.contains(&f) {
            let v = if f == Field::Email {
                v.as_str().to_lowercase()
            } else {
                v.as_str().to_owned()
            };
            out.push((f, v));
        }
    }
    Some(out)
}

/// For each row that repeats an identifier of an earlier row of the file:
/// the identifier and that row. The service cannot see these (its duplicate
/// check reads the read model, which this process does not update).
fn duplicates_in_file(rows: &[Row]) -> HashMap<usize, (Field, usize)> {
    let today = chrono::Utc::now().date_naive();
    let mut first: HashMap<(Field, String), usize> = HashMap::new();
    let mut out = HashMap::new();
    for r in rows {
        let Some(ids) = identifiers(&r.customer, today) else {
            continue;
        };
        if let Some((f, earlier)) = ids.iter().find_map(|k| first.get(k).map(|row| (k.0, *row))) {
            out.insert(r.row, (f, earlier));
            continue;
        }
        for k in ids {
            first.insert(k, r.row);
        }
    }
    out
}

/// What happened to one row.
enum Outcome {
    Imported,
    AlreadyPresent,
    Failed(RowError),
}

fn idempotency_key(external_id: &str) -> String {
    format!("import/{external_id}")
}

fn digest(c: &Customer) -> [u8; 32] {
    let body = serde_json::to_vec(c).expect("a row serialises");
    dossier_service::request_digest("IMPORT", "/v1/customers", &body)
}

/// Where the service's field name points in the file.
fn column_of(field: &str) -> String {
    let f = field.strip_prefix("details/").unwrap_or(field);
    f.split('/').next().unwrap_or(f).to_owned()
}

fn row_error(r: &Row, column: impl Into<String>, reason: impl Into<String>) -> RowError {
    RowError {
        row: r.row,
        line: r.line,
        external_id: r.external_id.clone(),
        column: column.into(),
        reason: reason.into(),
    }
}

/// Attempts for a row whose write failed for a passing reason (the
/// idempotency key makes the retry safe).
const ATTEMPTS: u32 = 4;

async fn import_row(
    service: &Service,
    principal: &Principal,
    file_name: &str,
    force: bool,
    in_file: Option<(Field, usize)>,
    r: &Row,
) -> Outcome {
    let key = idempotency_key(&r.external_id);
    let hash = digest(&r.customer);
    if let Some((field, earlier)) = in_file {
        // A repeat of an earlier row; unless this very row went in before
        // (e.g. with --force-duplicates), it is a duplicate.
        return match service.replayed(principal, &key, &hash).await {
            Ok(Some(_)) => Outcome::AlreadyPresent,
            Err(ServiceError::IdempotencyMismatch) => Outcome::Failed(mismatch(r)),
            Ok(None) => Outcome::Failed(row_error(
                r,
                field.as_str(),
                format!(
                    "same {field} as row {earlier} of this file (possible duplicate; \
                     --force-duplicates imports it anyway)"
                ),
            )),
            Err(e) => Outcome::Failed(row_error(r, "", e.to_string())),
        };
    }
    let input = RegisterInput {
        kind: r.customer.kind.clone(),
        details: r.customer.details.clone(),
        owner: r.customer.owner.clone(),
        tags: r.customer.tags.clone(),
        force,
    };
    let meta = WriteMeta {
        reason: Some(format!("import of {file_name}, row {}", r.row)),
        idempotency: Some((key, hash)),
        ..WriteMeta::default()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match service
            .register(principal, input.clone(), meta.clone())
            .await
        {
            Ok(o) if o.replayed => return Outcome::AlreadyPresent,
            Ok(_) => return Outcome::Imported,
            Err(ServiceError::Unavailable(_)) if attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => return Outcome::Failed(service_error(r, e)),
        }
    }
}

fn mismatch(r: &Row) -> RowError {
    row_error(
        r,
        EXTERNAL_ID,
        format!(
            "external_id {:?} was imported before with different content; an import does not \
             change existing customers (change them with PATCH /v1/customers/ID)",
            r.external_id
        ),
    )
}

fn service_error(r: &Row, e: ServiceError) -> RowError {
    match e {
        ServiceError::Invalid { field, reason } => row_error(r, column_of(&field), reason),
        ServiceError::Duplicate(found) => {
            let column = found.first().map(|d| d.field.clone()).unwrap_or_default();
            let ids: Vec<String> = found
                .iter()
                .map(|d| format!("{} (same {})", d.customer_id, d.field))
                .collect();
            row_error(
                r,
                column,
                format!(
                    "possible duplicate of existing customer {} (--force-duplicates imports it anyway)",
                    ids.join(", ")
                ),
            )
        }
        ServiceError::IdempotencyMismatch => mismatch(r),
        e => row_error(r, "", e.to_string()),
    }
}

/// The principal to act as: an existing one with this name, or a new
/// service principal (role admin, no usable token) of this name.
async fn acting_principal(store: &Store, name: &str) -> Result<Principal> {
    let p = store
        .service_principal(name, Role::Admin)
        .await
        .with_context(|| format!("finding or creating principal {name}"))?;
    authorize(&p, Action::WriteCustomers)
        .with_context(|| format!("principal {name} cannot import customers"))?;
    Ok(p)
}

/// `FILE.csv` -> `FILE.errors.csv` (next to it).
pub fn errors_path(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".to_owned());
    file.with_file_name(format!("{stem}.errors.csv"))
}

fn errors_csv(errors: &[RowError]) -> csv::Result<Vec<u8>> {
    // CRLF, as RFC 4180 has it (the crate's default is LF).
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(["row", "line", "external_id", "column", "error"])?;
    for e in errors {
        w.write_record([
            &e.row.to_string(),
            &e.line.to_string(),
            &e.external_id,
            &e.column,
            &e.reason,
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// Brings `customer_current` up to the log head, so that the service's
/// duplicate check sees every customer written before this import (a
/// running server's projector would do the same; the two take turns).
async fn catch_up_current(store: &Store, keyring: &Keyring) -> Result<()> {
    let projection =
        dossier_projections::by_name("customer_current", keyring.clone(), store.clone())?;
    let mut bar = Progress::stderr("catching up customer_current (for duplicate checks)");
    dossier_projections::catch_up(store, &projection, |cp, head| bar.update(cp, head)).await?;
    bar.finish();
    Ok(())
}

/// Imports `opts.file` through a service on `store` and `keyring`; the exit
/// code says whether every row is in ([`EXIT_ROWS_FAILED`] if not).
pub async fn run(store: &Store, keyring: &Keyring, opts: &Options) -> Result<ExitCode> {
    let start = Instant::now();
    let service = Service::new(store.clone(), keyring.clone());
    let bytes =
        std::fs::read(&opts.file).with_context(|| format!("reading {}", opts.file.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        anyhow::anyhow!(
            "{} is not UTF-8 (line {line}); save it as UTF-8 (\"CSV UTF-8\" in Excel)",
            opts.file.display()
        )
    })?;
    let records = csv_file::parse(&text).with_context(|| {
        format!(
            "{} is not valid CSV; nothing was imported",
            opts.file.display()
        )
    })?;
    let Some((header, body)) = records.split_first() else {
        bail!("{} is empty; nothing to import", opts.file.display());
    };
    let columns = columns(header)
        .with_context(|| format!("{}: nothing was imported", opts.file.display()))?;

    let mut errors: Vec<RowError> = Vec::new();
    let mut rows = Vec::new();
    for r in body {
        match read_row(&columns, r) {
            Ok(row) => rows.push(row),
            Err(e) => errors.extend(e),
        }
    }
    let in_file = if opts.force_duplicates {
        HashMap::new()
    } else {
        duplicates_in_file(&rows)
    };

    let principal = acting_principal(store, &opts.principal).await?;
    eprintln!(
        "importing {} rows of {} as principal {} (role {})",
        body.len(),
        opts.file.display(),
        principal.name,
        principal.role
    );
    if !opts.force_duplicates {
        catch_up_current(store, keyring).await?;
    }

    let file_name = opts
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let total = body.len();
    let done = Arc::new(AtomicUsize::new(total - rows.len()));
    let queue = Arc::new(Mutex::new(rows.into_iter().rev().collect::<Vec<_>>()));
    let in_file = Arc::new(in_file);
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut workers = JoinSet::new();
    for _ in 0..opts.concurrency.max(1) {
        let (service, principal, file_name) =
            (service.clone(), principal.clone(), file_name.clone());
        let (queue, in_file, outcomes, done) = (
            queue.clone(),
            in_file.clone(),
            outcomes.clone(),
            done.clone(),
        );
        let force = opts.force_duplicates;
        workers.spawn(async move {
            loop {
                let next = queue.lock().map(|mut q| q.pop()).ok().flatten();
                let Some(r) = next else { break };
                let o = import_row(
                    &service,
                    &principal,
                    &file_name,
                    force,
                    in_file.get(&r.row).copied(),
                    &r,
                )
                .await;
                if let Ok(mut all) = outcomes.lock() {
                    all.push(o);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut bar = Progress::stderr("importing");
    while !workers.is_empty() {
        tokio::select! {
            joined = workers.join_next() => {
                if let Some(Err(e)) = joined {
                    workers.abort_all();
                    return Err(anyhow::anyhow!("an import task failed: {e}"));
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        bar.update(done.load(Ordering::Relaxed) as i64, total as i64);
    }
    bar.finish();

    let (mut imported, mut present) = (0, 0);
    let outcomes = std::mem::take(&mut *outcomes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    for o in outcomes {
        match o {
            Outcome::Imported => imported += 1,
            Outcome::AlreadyPresent => present += 1,
            Outcome::Failed(e) => errors.push(e),
        }
    }
    errors.sort_by(|a, b| (a.row, &a.column).cmp(&(b.row, &b.column)));
    let failed_rows = errors.iter().map(|e| e.row).collect::<BTreeSet<_>>().len();
    let report = errors_path(&opts.file);
    if !errors.is_empty() {
        println!("errors (row as a spreadsheet numbers it, the header is row 1):");
        println!("{:>6}  {:<20} {:<16} error", "ROW", "EXTERNAL_ID", "COLUMN");
        for e in &errors {
            println!(
                "{:>6}  {:<20} {:<16} {}",
                e.row,
                e.external_id,
                e.column,
                e.reason.replace(['\r', '\n'], " ")
            );
        }
        std::fs::write(&report, errors_csv(&errors)?)
            .with_context(|| format!("writing {}", report.display()))?;
    } else if report.exists() {
        // A report left by an earlier run would now be wrong.
        std::fs::remove_file(&report)
            .with_context(|| format!("removing the stale {}", report.display()))?;
    }
    println!(
        "{total} rows: {imported} imported, {present} already imported, {failed_rows} failed ({:.1}s)",
        start.elapsed().as_secs_f64()
    );
    if failed_rows > 0 {
        println!("error report written to {}", report.display());
        Ok(ExitCode::from(EXIT_ROWS_FAILED))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(row: usize, fields: &[&str]) -> Record {
        Record {
            row,
            line: row,
            fields: fields.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn header_is_checked() {
        let cols = columns(&rec(1, &["kind", " external_id", "phone", "notes"])).unwrap();
        assert_eq!(cols[2], Column::Detail(Field::Phone));
        assert_eq!(cols[3], Column::Unknown("notes".into()));
        let e = columns(&rec(1, &["kind", "phone"])).unwrap_err();
        assert!(e.to_string().contains("external_id"), "{e}");
        let e = columns(&rec(1, &["kind", "external_id", "kind"])).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn rows_are_read_and_unknown_values_refused() {
        let cols = columns(&rec(1, &["kind", "external_id", "name", "tags", "notes"])).unwrap();
        let r = read_row(
            &cols,
            &rec(2, &["person", "c-1", " 张伟 ", "vip; 华东 ;;vip", ""]),
        )
        .unwrap();
        assert_eq!(r.customer.details["name"], "张伟");
        assert_eq!(r.customer.tags, vec!["vip", "华东"]);
        let e = read_row(&cols, &rec(3, &["person", "", "李娜", "", "call back"])).unwrap_err();
        let columns: Vec<&str> = e.iter().map(|e| e.column.as_str()).collect();
        assert_eq!(columns, ["external_id", "notes"]);
        let e = read_row(&cols, &rec(4, &["person", "c-4", "李娜", "", "", "extra"])).unwrap_err();
        assert_eq!(e[0].column, "6");
    }

    #[test]
    fn repeats_within_the_file_are_found() {
        let cols = columns(&rec(1, &["kind", "external_id", "name", "phone", "email"])).unwrap();
        let rows: Vec<Row> = [
            ["person", "a", "张伟", "13812345678", ""],
            ["person", "b", "李娜", "bad phone", ""],
            ["person", "c", "王芳", "+86 138 1234 5678", ""],
            ["person", "d", "赵磊", "", "A@Example.com"],
            ["person", "e", "孙丽", "", "a@example.COM"],
        ]
        .iter()
        .enumerate()
        .map(|(i, f)| read_row(&cols, &rec(i + 2, f)).unwrap())
        .collect();
        let d = duplicates_in_file(&rows);
        assert_eq!(d.get(&4), Some(&(Field::Phone, 2)));
        assert_eq!(d.get(&6), Some(&(Field::Email, 5)));
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn digests_ignore_tag_order_and_reports_parse_back() {
        let cols = columns(&rec(1, &["kind", "external_id", "name", "tags"])).unwrap();
        let a = read_row(&cols, &rec(2, &["person", "x", "张伟", "b;a"])).unwrap();
        let b = read_row(&cols, &rec(9, &["person", "x", "张伟", "a;b"])).unwrap();
        assert_eq!(digest(&a.customer), digest(&b.customer));
        let e = row_error(&a, "phone", "not a phone, \"x\"");
        let multi = row_error(&b, "", "phone: \"abc\" is not, a phone\nnumber");
        let report = String::from_utf8(errors_csv(&[e, multi]).unwrap()).unwrap();
        assert!(
            report.starts_with("row,line,external_id,column,error\r\n2,2,x,phone,"),
            "{report}"
        );
        let back = csv_file::parse(&report).unwrap();
        assert_eq!(back[1].fields[3], "phone");
        assert_eq!(back[1].fields[4], "not a phone, \"x\"");
        assert_eq!(back[2].fields[0], "9");
        assert_eq!(back[2].fields[4], "phone: \"abc\" is not, a phone\nnumber");
        assert_eq!(column_of("details/phone"), "phone");
        assert_eq!(column_of("tags/0"), "tags");
        assert_eq!(
            errors_path(Path::new("/tmp/in/customers.csv")),
            Path::new("/tmp/in/customers.errors.csv")
        );
    }
}
