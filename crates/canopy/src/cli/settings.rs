//! `canopy settings ...`: the installation's settings (admins): four-eye
//! approval (FE1), the longest access a binding may grant (AC7) and
//! substitute payment methods (PM2).

use canopy_api_types::{FourEyeChange, Settings, UpdateSettings};
use clap::Subcommand;

use super::api::CliError;
use super::{Ctx, Switch};

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Show the installation's settings (admins).
    Show,
    /// Change the installation's settings (admins); what is not given stays as it is.
    Set {
        /// Whether changes to bindings need four-eye approval, in every
        /// workspace without its own setting (see `canopy workspace four-eye`).
        #[arg(long, value_enum)]
        four_eye: Option<Switch>,
        /// Approvals a request needs from managers other than the requester,
        /// 1 to 10; without --four-eye, four-eye stays on or off as it is.
        #[arg(long)]
        approvals: Option<u32>,
        /// The longest access, in days (1 to 36500), that a new or changed
        /// binding may grant; every new binding then needs an expiration.
        #[arg(long, conflicts_with = "no_max_binding_days")]
        max_binding_days: Option<u32>,
        /// Remove the longest access: bindings may last until removed.
        #[arg(long)]
        no_max_binding_days: bool,
        /// Whether projects may name a substitute payment method.
        #[arg(long, value_enum)]
        payment_substitutes: Option<Switch>,
    },
}

pub async fn settings(ctx: &Ctx, cmd: SettingsCommand) -> Result<(), CliError> {
    match cmd {
        SettingsCommand::Show => {
            let client = ctx.api()?;
            ctx.print_one::<Settings>(client.get(&["settings"], &[]).await?)
        }
        SettingsCommand::Set { four_eye, approvals, max_binding_days, no_max_binding_days, payment_substitutes } => {
            let max_binding_days = if no_max_binding_days { Some(None) } else { max_binding_days.map(Some) };
            if four_eye.is_none() && approvals.is_none() && max_binding_days.is_none() && payment_substitutes.is_none()
            {
                return Err(CliError::Usage(
                    "nothing to change: give --four-eye, --approvals, --max-binding-days, --no-max-binding-days \
                     or --payment-substitutes"
                        .into(),
                ));
            }
            let client = ctx.api()?;
            let four_eye = (four_eye.is_some() || approvals.is_some())
                .then(|| FourEyeChange { enabled: four_eye.map(Switch::on), approvals });
            let body =
                UpdateSettings { four_eye, max_binding_days, payment_substitutes: payment_substitutes.map(Switch::on) };
            ctx.print_one::<Settings>(client.patch(&["settings"], &body).await?)
        }
    }
}
