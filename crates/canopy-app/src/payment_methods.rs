//! Payment methods of a workspace (PM1) and the forecast of projects whose
//! payment method runs out with no substitute (PM3). Projects name theirs on
//! create and update; the daily substitution is `canopy_engine::payments`.

use canopy_domain::authz::Action;
use canopy_domain::events::{PaymentMethodCreated, PaymentMethodDeleted, PaymentMethodTerms, PaymentMethodUpdated};
use canopy_domain::payments::{FORECAST, check_method, needs_attention};
use canopy_store::{PaymentMethodRecord, ProjectPayment, Store, Tx, WorkspaceRecord};
use serde_json::{Map, Value};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};
use crate::principal::Principal;

/// A payment method to add. `expires_on` is a date as given (`YYYY-MM-DD`),
/// read only once the principal may add it.
#[derive(Debug, Clone)]
pub struct NewPaymentMethod {
    pub name: String,
    pub amount: f64,
    pub expires_on: String,
    pub billing_data: Map<String, Value>,
}

/// A change of a payment method; `None` keeps what it has.
#[derive(Debug, Clone, Default)]
pub struct PaymentMethodChange {
    pub name: Option<String>,
    pub amount: Option<f64>,
    /// `YYYY-MM-DD`.
    pub expires_on: Option<String>,
    pub billing_data: Option<Map<String, Value>>,
}

fn parse_date(field: &str, s: &str) -> Result<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, format).map_err(|_| Error::invalid(field, "must be a date, YYYY-MM-DD"))
}

fn checked(m: &PaymentMethodRecord) -> Result<()> {
    let problems = check_method(&m.name, m.amount, m.billing_data.len());
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(problems.into_iter().map(|(field, message)| FieldError { field, message }).collect()))
}

/// The payment method `id` of the workspace (not found for another workspace's).
pub async fn load_method(tx: &mut Tx, ws: &WorkspaceRecord, id: &str) -> Result<PaymentMethodRecord> {
    let not_found = || Error::not_found(format!("no payment method {id} in workspace {}", ws.identifier));
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    match tx.payment_method(id).await? {
        Some(m) if m.workspace_id == ws.id => Ok(m),
        _ => Err(not_found()),
    }
}

/// A workspace's payment methods, soonest expiring first (members, PM1).
pub async fn list(store: &Store, by: &Principal, ws: &str) -> Result<Vec<PaymentMethodRecord>> {
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ViewWorkspace).await?;
    Ok(tx.payment_methods(ws.id).await?)
}

/// Add a payment method to a workspace (managers, PM1).
pub async fn create(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    ws: &str,
    input: NewPaymentMethod,
) -> Result<PaymentMethodRecord> {
    let mut tx = store.write().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    let expires_on = parse_date("expires_on", &input.expires_on)?;
    let draft = PaymentMethodRecord {
        id: Uuid::nil(),
        workspace_id: ws.id,
        name: input.name.trim().to_owned(),
        amount: input.amount,
        expires_on,
        billing_data: input.billing_data,
    };
    checked(&draft)?;
    let m = tx.insert_payment_method(ws.id, &draft.name, draft.amount, expires_on, &draft.billing_data, now).await?;
    let created = PaymentMethodCreated { payment_method: m.id, terms: terms(&m) };
    tx.record(Some(ws.id), now, &by.initiator(), created.into())?;
    tx.commit().await?;
    Ok(m)
}

/// Change a payment method (managers, PM1).
pub async fn update(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, id): (&str, &str),
    change: PaymentMethodChange,
) -> Result<PaymentMethodRecord> {
    let mut tx = store.write().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    let before = load_method(&mut tx, &ws, id).await?;
    let mut m = before.clone();
    if let Some(n) = change.name {
        m.name = n.trim().to_owned();
    }
    if let Some(a) = change.amount {
        m.amount = a;
    }
    if let Some(e) = change.expires_on {
        m.expires_on = parse_date("expires_on", &e)?;
    }
    if let Some(b) = change.billing_data {
        m.billing_data = b;
    }
    checked(&m)?;
    tx.update_payment_method(&m).await?;
    let updated = PaymentMethodUpdated { payment_method: m.id, old: terms(&before), new: terms(&m) };
    tx.record(Some(ws.id), now, &by.initiator(), updated.into())?;
    tx.commit().await?;
    Ok(m)
}

/// A payment method's terms as the history records them.
fn terms(m: &PaymentMethodRecord) -> PaymentMethodTerms {
    PaymentMethodTerms { name: m.name.clone(), amount: m.amount, expires_on: m.expires_on }
}

/// Remove a payment method no project names (managers, PM1).
pub async fn delete(store: &Store, by: &Principal, now: OffsetDateTime, (ws, id): (&str, &str)) -> Result<()> {
    let mut tx = store.write().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    let m = load_method(&mut tx, &ws, id).await?;
    let uses = tx.payment_method_uses(m.id).await?;
    if uses > 0 {
        return Err(Error::conflict_on("id", format!("{uses} project(s) name this payment method; change them first")));
    }
    tx.delete_payment_method(m.id).await?;
    tx.record(Some(ws.id), now, &by.initiator(), PaymentMethodDeleted { payment_method: m.id, name: m.name }.into())?;
    tx.commit().await?;
    Ok(())
}

/// The projects of a workspace whose payment method runs out within 30
/// days, or has, with no substitute named (managers, PM3).
pub async fn forecast(store: &Store, by: &Principal, now: OffsetDateTime, ws: &str) -> Result<Vec<ProjectPayment>> {
    let today = now.date();
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    // the store reads the candidates only; the domain decides
    Ok(tx
        .projects_paid_until(ws.id, today.saturating_add(FORECAST))
        .await?
        .into_iter()
        .filter(|p| needs_attention(p.method.expires_on, p.substitute.is_some(), today))
        .collect())
}
