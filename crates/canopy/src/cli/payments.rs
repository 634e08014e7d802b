//! `canopy payment-method list|add|update|delete|forecast` (PM1-PM3), and a
//! project's payment method with `canopy project payment`.

use canopy_api_types::{CreatePaymentMethod, PaymentForecast, PaymentMethod, UpdatePaymentMethod};
use clap::Subcommand;

use super::api::CliError;
use super::{Ctx, render};

#[derive(Debug, Subcommand)]
pub enum PaymentMethodCommand {
    /// A workspace's payment methods, soonest expiring first.
    List { ws: String },
    /// Add a payment method (managers).
    Add {
        ws: String,
        #[arg(long)]
        name: String,
        /// The budget.
        #[arg(long)]
        amount: f64,
        /// The last day it may be used, YYYY-MM-DD.
        #[arg(long)]
        expires_on: String,
        /// Billing data, KEY=VALUE (repeatable).
        #[arg(long = "billing", value_parser = billing_arg)]
        billing: Vec<(String, String)>,
    },
    /// Change a payment method (managers).
    Update {
        ws: String,
        /// The payment method's id.
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        amount: Option<f64>,
        #[arg(long)]
        expires_on: Option<String>,
    },
    /// Remove a payment method no project names (managers).
    Delete { ws: String, id: String },
    /// Projects whose payment method runs out within 30 days with no substitute.
    Forecast { ws: String },
}

fn billing_arg(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    Ok((k.to_owned(), v.to_owned()))
}

impl render::Render for PaymentMethod {
    const HEADERS: &'static [&'static str] = &["ID", "NAME", "AMOUNT", "EXPIRES ON"];
    fn row(&self) -> Vec<String> {
        vec![self.id.to_string(), self.name.clone(), self.amount.to_string(), self.expires_on.clone()]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.to_string()),
            ("name", self.name.clone()),
            ("amount", self.amount.to_string()),
            ("expires_on", self.expires_on.clone()),
            ("billing_data", serde_json::Value::Object(self.billing_data.clone()).to_string()),
        ]
    }
}

impl render::Render for PaymentForecast {
    const HEADERS: &'static [&'static str] = &["PROJECT", "PAYMENT METHOD", "NAME", "EXPIRES ON"];
    fn row(&self) -> Vec<String> {
        vec![self.project.clone(), self.payment_method.to_string(), self.name.clone(), self.expires_on.clone()]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("project", self.project.clone()), ("payment_method", self.payment_method.to_string())]
    }
}

pub async fn payment_method(ctx: &Ctx, cmd: PaymentMethodCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        PaymentMethodCommand::List { ws } => {
            let (items, _) = client.list(&["workspaces", &ws, "payment-methods"], &[], None, 500).await?;
            ctx.print_list::<PaymentMethod>(items)
        }
        PaymentMethodCommand::Add { ws, name, amount, expires_on, billing } => {
            let billing_data = billing.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
            let body = CreatePaymentMethod { name, amount, expires_on, billing_data };
            ctx.print_one::<PaymentMethod>(client.post(&["workspaces", &ws, "payment-methods"], &body).await?)
        }
        PaymentMethodCommand::Update { ws, id, name, amount, expires_on } => {
            let body = UpdatePaymentMethod { name, amount, expires_on, billing_data: None };
            ctx.print_one::<PaymentMethod>(client.patch(&["workspaces", &ws, "payment-methods", &id], &body).await?)
        }
        PaymentMethodCommand::Delete { ws, id } => {
            client.delete(&["workspaces", &ws, "payment-methods", &id]).await?;
            ctx.done(format!("Removed payment method {id} from workspace {ws}"));
            Ok(())
        }
        PaymentMethodCommand::Forecast { ws } => {
            let (items, _) = client.list(&["workspaces", &ws, "payment-methods", "forecast"], &[], None, 500).await?;
            ctx.print_list::<PaymentForecast>(items)
        }
    }
}
