//! Payment methods of a workspace (PM1) and the forecast of projects whose
//! payment method runs out with no substitute (PM3). Projects name theirs in
//! `projects.rs`; the daily substitution is `canopy_engine::payments`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreatePaymentMethod, Page, PaymentForecast, PaymentMethod, Problem, UpdatePaymentMethod};
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_domain::payments::{check_method, needs_attention};
use canopy_store::{PaymentMethodRecord, WorkspaceRecord, format_date};
use serde_json::json;
use time::Date;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path};
use crate::routes::load_workspace;

pub fn to_api(m: PaymentMethodRecord) -> PaymentMethod {
    PaymentMethod {
        id: m.id,
        name: m.name,
        amount: m.amount,
        expires_on: format_date(m.expires_on),
        billing_data: m.billing_data,
    }
}

fn parse_date(field: &str, s: &str) -> ApiResult<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, format).map_err(|_| ApiError::invalid(field, "must be a date, YYYY-MM-DD"))
}

fn checked(m: &PaymentMethodRecord) -> ApiResult<()> {
    let problems = check_method(&m.name, m.amount, m.billing_data.len());
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid(
        problems.into_iter().map(|(field, message)| canopy_api_types::FieldError { field, message }).collect(),
    ))
}

/// The payment method `id` of the workspace (404 for another workspace's).
pub async fn load_method(tx: &mut canopy_store::Tx, ws: &WorkspaceRecord, id: &str) -> ApiResult<PaymentMethodRecord> {
    let not_found = || ApiError::not_found(format!("no payment method {id} in workspace {}", ws.identifier));
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    match tx.payment_method(id).await? {
        Some(m) if m.workspace_id == ws.id => Ok(m),
        _ => Err(not_found()),
    }
}

/// A workspace's payment methods, soonest expiring first (members).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/payment-methods", tag = "projects", params(("ws" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = Page<PaymentMethod>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> ApiResult<Json<Page<PaymentMethod>>> {
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewWorkspace).await?;
    let items = tx.payment_methods(ws.id).await?.into_iter().map(to_api).collect();
    Ok(Json(Page { items, next_cursor: None }))
}

/// Add a payment method (managers).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/payment-methods", tag = "projects", params(("ws" = String, Path)),
    request_body = CreatePaymentMethod, security(("bearer" = [])),
    responses((status = 201, body = PaymentMethod), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<CreatePaymentMethod>,
) -> ApiResult<(StatusCode, Json<PaymentMethod>)> {
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let expires_on = parse_date("expires_on", &body.expires_on)?;
    let draft = PaymentMethodRecord {
        id: Uuid::nil(),
        workspace_id: ws.id,
        name: body.name.trim().to_owned(),
        amount: body.amount,
        expires_on,
        billing_data: body.billing_data,
    };
    checked(&draft)?;
    let m = tx.insert_payment_method(ws.id, &draft.name, draft.amount, expires_on, &draft.billing_data, now).await?;
    tx.append_event(
        Some(ws.id),
        EventKind::PaymentMethodCreated,
        now,
        &caller.initiator(),
        json!({"payment_method": m.id, "name": m.name, "amount": m.amount, "expires_on": format_date(m.expires_on)}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_api(m))))
}

/// Change a payment method (managers).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/payment-methods/{id}", tag = "projects",
    params(("ws" = String, Path), ("id" = Uuid, Path)), request_body = UpdatePaymentMethod, security(("bearer" = [])),
    responses((status = 200, body = PaymentMethod), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdatePaymentMethod>,
) -> ApiResult<Json<PaymentMethod>> {
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let before = load_method(&mut tx, &ws, &id).await?;
    let mut m = before.clone();
    if let Some(n) = body.name {
        m.name = n.trim().to_owned();
    }
    if let Some(a) = body.amount {
        m.amount = a;
    }
    if let Some(e) = body.expires_on {
        m.expires_on = parse_date("expires_on", &e)?;
    }
    if let Some(b) = body.billing_data {
        m.billing_data = b;
    }
    checked(&m)?;
    tx.update_payment_method(&m).await?;
    let side =
        |m: &PaymentMethodRecord| json!({"name": m.name, "amount": m.amount, "expires_on": format_date(m.expires_on)});
    tx.append_event(
        Some(ws.id),
        EventKind::PaymentMethodUpdated,
        now,
        &caller.initiator(),
        json!({"payment_method": m.id, "old": side(&before), "new": side(&m)}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(to_api(m)))
}

/// Remove a payment method no project names (managers).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/payment-methods/{id}", tag = "projects",
    params(("ws" = String, Path), ("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let m = load_method(&mut tx, &ws, &id).await?;
    let uses = tx.payment_method_uses(m.id).await?;
    if uses > 0 {
        return Err(ApiError::conflict_on(
            "id",
            format!("{uses} project(s) name this payment method; change them first"),
        ));
    }
    tx.delete_payment_method(m.id).await?;
    tx.append_event(
        Some(ws.id),
        EventKind::PaymentMethodDeleted,
        now,
        &caller.initiator(),
        json!({"payment_method": m.id, "name": m.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Projects whose payment method runs out within 30 days, or has, with no
/// substitute named (managers).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/payment-methods/forecast", tag = "projects", params(("ws" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = Page<PaymentForecast>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn forecast(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> ApiResult<Json<Page<PaymentForecast>>> {
    let today = app.clock.now().date();
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let items = tx
        .project_payments(Some(ws.id))
        .await?
        .into_iter()
        .filter(|p| needs_attention(p.method.expires_on, p.substitute.is_some(), today))
        .map(|p| PaymentForecast {
            project: p.project,
            payment_method: p.method.id,
            name: p.method.name,
            expires_on: format_date(p.method.expires_on),
        })
        .collect();
    Ok(Json(Page { items, next_cursor: None }))
}
