//! Payment methods (PM1-PM3) and projects' payment methods.

use crate::db::Row;
use serde_json::{Map, Value};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{Result, RowExt, StoreError, Tx, new_id, to_us};

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentMethodRecord {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub amount: f64,
    pub expires_on: Date,
    pub billing_data: Map<String, Value>,
}

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

pub fn format_date(d: Date) -> String {
    d.format(DATE).unwrap_or_default()
}

fn from_row(r: &Row) -> Result<PaymentMethodRecord> {
    let text = r.text("expires_on")?;
    let expires_on = Date::parse(&text, DATE).map_err(|e| StoreError::Corrupt(format!("expires_on {text:?}: {e}")))?;
    let billing = r.text("billing_data")?;
    let billing_data = match serde_json::from_str(&billing) {
        Ok(Value::Object(m)) => m,
        _ => return Err(StoreError::Corrupt(format!("billing_data {billing:?}"))),
    };
    Ok(PaymentMethodRecord {
        id: r.uuid("id")?,
        workspace_id: r.uuid("workspace_id")?,
        name: r.text("name")?,
        amount: r.real("amount")?,
        expires_on,
        billing_data,
    })
}

const COLS: &str = "id, workspace_id, name, amount, expires_on, billing_data";

/// A project whose payment method the daily job looks at.
#[derive(Debug, Clone)]
pub struct ProjectPayment {
    pub project_id: Uuid,
    pub workspace_id: Uuid,
    pub project: String,
    pub method: PaymentMethodRecord,
    pub substitute: Option<Uuid>,
}

impl Tx {
    pub async fn payment_methods(&mut self, workspace_id: Uuid) -> Result<Vec<PaymentMethodRecord>> {
        let rows = crate::db::query(format!(
            "SELECT {COLS} FROM payment_methods WHERE workspace_id = $1 ORDER BY expires_on, id"
        ))
        .bind(workspace_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn payment_method(&mut self, id: Uuid) -> Result<Option<PaymentMethodRecord>> {
        let row = crate::db::query(format!("SELECT {COLS} FROM payment_methods WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn insert_payment_method(
        &mut self,
        workspace_id: Uuid,
        name: &str,
        amount: f64,
        expires_on: Date,
        billing_data: &Map<String, Value>,
        now: OffsetDateTime,
    ) -> Result<PaymentMethodRecord> {
        let id = new_id();
        let written = crate::db::query(
            "INSERT INTO payment_methods (id, workspace_id, name, amount, expires_on, billing_data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(workspace_id.to_string())
        .bind(name)
        .bind(amount)
        .bind(format_date(expires_on))
        .bind(Value::Object(billing_data.clone()).to_string())
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_payment_method");
        let id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.payment_method(id).await?.ok_or(StoreError::Conflict)
    }

    pub async fn update_payment_method(&mut self, m: &PaymentMethodRecord) -> Result<()> {
        let written = crate::db::query(
            "UPDATE payment_methods SET name = $2, amount = $3, expires_on = $4, billing_data = $5 WHERE id = $1",
        )
        .bind(m.id.to_string())
        .bind(&m.name)
        .bind(m.amount)
        .bind(format_date(m.expires_on))
        .bind(Value::Object(m.billing_data.clone()).to_string())
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "update_payment_method");
        Ok(())
    }

    pub async fn delete_payment_method(&mut self, id: Uuid) -> Result<()> {
        let written = crate::db::query("DELETE FROM payment_methods WHERE id = $1")
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "delete_payment_method");
        Ok(())
    }

    /// How many projects name the payment method, as theirs or as substitute.
    pub async fn payment_method_uses(&mut self, id: Uuid) -> Result<i64> {
        let r = crate::db::query(
            "SELECT COUNT(*) AS n FROM projects WHERE payment_method_id = $1 OR substitute_payment_method_id = $1",
        )
        .bind(id.to_string())
        .fetch_one(self.conn())
        .await?;
        r.int("n")
    }

    pub async fn set_project_payment(
        &mut self,
        project_id: Uuid,
        method: Option<Uuid>,
        substitute: Option<Uuid>,
    ) -> Result<()> {
        let written = crate::db::query(
            "UPDATE projects SET payment_method_id = $2, substitute_payment_method_id = $3 WHERE id = $1",
        )
        .bind(project_id.to_string())
        .bind(method.map(|m| m.to_string()))
        .bind(substitute.map(|m| m.to_string()))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "set_project_payment");
        Ok(())
    }

    /// Up to `limit` projects whose payment method expires before `before`
    /// and that name a substitute (the payment job's candidates, PM3), the
    /// earliest expiry first. Read from the expired methods through
    /// `payment_methods_expiry` and `projects_payment`, so the cost follows
    /// what is due, not the number of projects.
    pub async fn projects_to_substitute(&mut self, before: Date, limit: i64) -> Result<Vec<ProjectPayment>> {
        let rows = crate::db::query(format!(
            "{PROJECT_PAYMENT_SELECT} WHERE m.expires_on < $1 AND p.substitute_payment_method_id IS NOT NULL \
             ORDER BY m.expires_on, p.identifier LIMIT CAST($2 AS BIGINT)"
        ))
        .bind(format_date(before))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(project_payment).collect()
    }

    /// The projects of a workspace whose payment method expires on or
    /// before `by` and that name no substitute (the forecast's candidates,
    /// PM2), the earliest expiry first; read through the workspace's
    /// methods, so the cost follows the projects listed.
    pub async fn projects_paid_until(&mut self, workspace_id: Uuid, by: Date) -> Result<Vec<ProjectPayment>> {
        let rows = crate::db::query(format!(
            "{PROJECT_PAYMENT_SELECT} WHERE m.workspace_id = $1 AND p.workspace_id = $1 AND m.expires_on <= $2 \
               AND p.substitute_payment_method_id IS NULL \
             ORDER BY m.expires_on, p.identifier"
        ))
        .bind(workspace_id.to_string())
        .bind(format_date(by))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(project_payment).collect()
    }
}

const PROJECT_PAYMENT_SELECT: &str = "SELECT p.id AS project_id, p.workspace_id AS project_workspace, \
        p.identifier AS project, p.substitute_payment_method_id AS substitute, \
        m.id, m.workspace_id, m.name, m.amount, m.expires_on, m.billing_data \
     FROM payment_methods m JOIN projects p ON p.payment_method_id = m.id";

fn project_payment(r: &Row) -> Result<ProjectPayment> {
    Ok(ProjectPayment {
        project_id: r.uuid("project_id")?,
        workspace_id: r.uuid("project_workspace")?,
        project: r.text("project")?,
        method: from_row(r)?,
        substitute: r.uuid_opt("substitute")?,
    })
}
