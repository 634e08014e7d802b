//! Installation settings and a workspace's own four-eye setting (FE1).

use canopy_domain::four_eye::FourEye;
use uuid::Uuid;

use crate::{Result, RowExt, StoreError, Tx};

/// The installation's settings (one row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallationSettings {
    pub four_eye: FourEye,
    /// The longest access a new or changed binding may grant; `None`: no maximum.
    pub max_binding_days: Option<u32>,
    /// Whether projects may name a substitute payment method (PM2).
    pub payment_substitutes: bool,
}

impl InstallationSettings {
    pub fn max_binding_duration(&self) -> Option<time::Duration> {
        self.max_binding_days.map(|d| time::Duration::days(i64::from(d)))
    }
}

fn four_eye(enabled: i64, approvals: i64) -> Result<FourEye> {
    let approvals = u32::try_from(approvals).map_err(|_| StoreError::Corrupt(format!("approvals {approvals}")))?;
    FourEye::new(enabled != 0, approvals).map_err(|e| StoreError::Corrupt(format!("four-eye approvals: {e}")))
}

/// A workspace's own four-eye setting from its row's `four_eye_enabled` and
/// `four_eye_approvals` (both NULL: it follows the installation's).
pub(crate) fn own_four_eye(r: &crate::Row) -> Result<Option<FourEye>> {
    match (r.int_opt("four_eye_enabled")?, r.int_opt("four_eye_approvals")?) {
        (Some(e), Some(a)) => Ok(Some(four_eye(e, a)?)),
        _ => Ok(None),
    }
}

impl Tx {
    /// The installation's settings: read once per transaction.
    pub async fn settings(&mut self) -> Result<InstallationSettings> {
        if let Some(s) = &self.settings {
            return Ok(*s);
        }
        let r = crate::db::query(
            "SELECT four_eye_enabled, four_eye_approvals, max_binding_days, payment_substitutes \
             FROM installation_settings WHERE id = 1",
        )
        .fetch_one(self.conn())
        .await?;
        let max = r.int_opt("max_binding_days")?;
        let settings = InstallationSettings {
            four_eye: four_eye(r.int("four_eye_enabled")?, r.int("four_eye_approvals")?)?,
            max_binding_days: max
                .map(|d| u32::try_from(d).map_err(|_| StoreError::Corrupt(format!("max_binding_days {d}"))))
                .transpose()?,
            payment_substitutes: r.flag("payment_substitutes")?,
        };
        self.settings = Some(settings);
        Ok(settings)
    }

    /// Lock the settings until the transaction ends; read them after, so
    /// that concurrent changes of different fields queue rather than one
    /// writing back what it read before the other.
    pub async fn lock_settings(&mut self) -> Result<()> {
        // what was read before the lock may be stale by now (PostgreSQL)
        self.settings = None;
        if self.only_writer() {
            return Ok(());
        }
        crate::db::query("UPDATE installation_settings SET id = id WHERE id = 1").execute(self.conn()).await?;
        Ok(())
    }

    /// Replace the installation's settings (after [`Tx::lock_settings`]).
    pub async fn set_settings(&mut self, s: &InstallationSettings) -> Result<()> {
        let written = crate::db::query(
            "UPDATE installation_settings SET four_eye_enabled = $1, four_eye_approvals = $2, \
             max_binding_days = $3, payment_substitutes = $4 WHERE id = 1",
        )
        .bind(i64::from(s.four_eye.enabled))
        .bind(i64::from(s.four_eye.approvals))
        .bind(s.max_binding_days.map(i64::from))
        .bind(i64::from(s.payment_substitutes))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "set_settings");
        self.settings = Some(*s);
        Ok(())
    }

    /// A workspace's own four-eye setting; `None`: it follows the
    /// installation's. Read with the workspace when this transaction looked
    /// it up by [`Tx::workspace_with_roles`], as a change does first, and
    /// again by [`Tx::lock_workspace`] and [`Tx::share_workspace`]: on
    /// PostgreSQL only a read under one of those locks is current until the
    /// transaction ends (SQLite's writer holds the whole database).
    pub async fn workspace_four_eye(&mut self, workspace_id: Uuid) -> Result<Option<FourEye>> {
        if let Some((id, own)) = self.workspace_four_eye
            && id == workspace_id
        {
            return Ok(own);
        }
        let r = crate::db::query("SELECT four_eye_enabled, four_eye_approvals FROM workspaces WHERE id = $1")
            .bind(workspace_id.to_string())
            .fetch_one(self.conn())
            .await?;
        let own = own_four_eye(&r)?;
        self.workspace_four_eye = Some((workspace_id, own));
        Ok(own)
    }

    pub async fn set_workspace_four_eye(&mut self, workspace_id: Uuid, setting: Option<FourEye>) -> Result<()> {
        let written =
            crate::db::query("UPDATE workspaces SET four_eye_enabled = $2, four_eye_approvals = $3 WHERE id = $1")
                .bind(workspace_id.to_string())
                .bind(setting.map(|s| i64::from(s.enabled)))
                .bind(setting.map(|s| i64::from(s.approvals)))
                .execute(self.conn())
                .await?;
        self.changed(written.rows_affected(), "set_workspace_four_eye");
        self.workspace_four_eye = Some((workspace_id, setting));
        Ok(())
    }

    /// The four-eye setting in force for a workspace (FE1).
    pub async fn effective_four_eye(&mut self, workspace_id: Uuid) -> Result<FourEye> {
        let own = self.workspace_four_eye(workspace_id).await?;
        Ok(FourEye::effective(self.settings().await?.four_eye, own))
    }
}
