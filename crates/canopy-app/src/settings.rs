//! Installation settings (admins): four-eye (FE1), the longest access a
//! binding may grant (AC7) and substitute payment methods (PM2).

use canopy_domain::authz::Action;
use canopy_domain::events::{SettingsChanged, SettingsValues};
use canopy_domain::four_eye::FourEye;
use canopy_store::{InstallationSettings, Store};
use time::OffsetDateTime;

use crate::error::{Error, FieldError, Result};
use crate::principal::Principal;

/// The most days a maximum for access may name (a hundred years).
pub const MAX_BINDING_DAYS: u32 = 36_500;

/// A change to a four-eye setting; what is left out stays as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct FourEyeChange {
    pub enabled: Option<bool>,
    pub approvals: Option<u32>,
}

/// A change of the installation's settings; `None` keeps what it has.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub four_eye: Option<FourEyeChange>,
    /// `Some(None)` removes the maximum.
    pub max_binding_days: Option<Option<u32>>,
    pub payment_substitutes: Option<bool>,
}

/// A four-eye setting changed as given (FE1), or the field error naming
/// `field.approvals`.
pub fn change_four_eye(field: &str, current: FourEye, change: FourEyeChange) -> Result<FourEye, FieldError> {
    let enabled = change.enabled.unwrap_or(current.enabled);
    FourEye::new(enabled, change.approvals.unwrap_or(current.approvals))
        .map_err(|e| FieldError::new(&format!("{field}.approvals"), e.to_string()))
}

/// The settings as the history records them.
fn values(s: &InstallationSettings) -> SettingsValues {
    SettingsValues {
        four_eye: s.four_eye.into(),
        max_binding_days: s.max_binding_days,
        payment_substitutes: s.payment_substitutes,
    }
}

/// The installation's settings (admins).
pub async fn show(store: &Store, by: &Principal) -> Result<InstallationSettings> {
    by.require(Action::AdministerInstallation)?;
    let mut tx = store.read().await?;
    Ok(tx.settings().await?)
}

/// Change the installation's settings (admins); fields left out stay as they
/// are. Changing four-eye affects requests made from then on (FE1); pending
/// ones keep the approvals they were made with. A change that changes
/// nothing records nothing.
pub async fn update(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    change: SettingsChange,
) -> Result<InstallationSettings> {
    by.require(Action::AdministerInstallation)?;
    let mut tx = store.write().await?;
    tx.lock_settings().await?;
    let old = tx.settings().await?;
    let mut errors = Vec::new();
    let four_eye =
        change.four_eye.map(|f| change_four_eye("four_eye", old.four_eye, f)).transpose().unwrap_or_else(|e| {
            errors.push(e);
            None
        });
    if let Some(Some(days)) = change.max_binding_days
        && !(1..=MAX_BINDING_DAYS).contains(&days)
    {
        errors.push(FieldError::new(
            "max_binding_days",
            format!("must be between 1 and {MAX_BINDING_DAYS}, or null for no maximum"),
        ));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let new = InstallationSettings {
        four_eye: four_eye.unwrap_or(old.four_eye),
        max_binding_days: change.max_binding_days.unwrap_or(old.max_binding_days),
        payment_substitutes: change.payment_substitutes.unwrap_or(old.payment_substitutes),
    };
    if new != old {
        tx.set_settings(&new).await?;
        let changed = SettingsChanged { old: values(&old), new: values(&new) };
        tx.record(None, now, &by.initiator(), changed.into())?;
    }
    tx.commit().await?;
    Ok(new)
}
