//! Payment methods of a workspace (PM1) and the forecast of projects whose
//! payment method runs out with no substitute (PM3); changes are use cases of
//! [`canopy_app::payment_methods`]. Projects name theirs in `projects.rs`;
//! the daily substitution is `canopy_engine::payments`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreatePaymentMethod, Page, PaymentForecast, PaymentMethod, Problem, UpdatePaymentMethod};
use canopy_app::payment_methods::{self as uc, NewPaymentMethod, PaymentMethodChange};
use canopy_store::{PaymentMethodRecord, format_date};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path};

pub fn to_api(m: PaymentMethodRecord) -> PaymentMethod {
    PaymentMethod {
        id: m.id,
        name: m.name,
        amount: m.amount,
        expires_on: format_date(m.expires_on),
        billing_data: m.billing_data,
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
    let items = uc::list(&app.store, &caller, &ws).await?.into_iter().map(to_api).collect();
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
    // the date is read by the use case, after the workspace and the caller's role (404, 403 before 422)
    let input = NewPaymentMethod {
        name: body.name,
        amount: body.amount,
        expires_on: body.expires_on,
        billing_data: body.billing_data,
    };
    let m = uc::create(&app.store, &caller, app.clock.now(), &ws, input).await?;
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
    let change = PaymentMethodChange {
        name: body.name,
        amount: body.amount,
        expires_on: body.expires_on,
        billing_data: body.billing_data,
    };
    Ok(Json(to_api(uc::update(&app.store, &caller, app.clock.now(), (&ws, &id), change).await?)))
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
    uc::delete(&app.store, &caller, app.clock.now(), (&ws, &id)).await?;
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
    let items = uc::forecast(&app.store, &caller, app.clock.now(), &ws)
        .await?
        .into_iter()
        .map(|p| PaymentForecast {
            project: p.project,
            payment_method: p.method.id,
            name: p.method.name,
            expires_on: format_date(p.method.expires_on),
        })
        .collect();
    Ok(Json(Page { items, next_cursor: None }))
}
