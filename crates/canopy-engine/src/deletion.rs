//! What follows a tenant deletion (DL1, DL5): the project goes when its last
//! tenant went, or stays with the declined ones. Called in the transaction
//! that removed or declined a tenant, by the engine and by the API alike.

use canopy_domain::deletion::{ProjectOutcome, TenantDeletion, project_outcome};
use canopy_domain::events::{BindingRemoved, ProjectDeleted, ProjectDeletionDeclined};
use canopy_domain::history::Initiator;
use canopy_store::{ProjectRecord, StoreError, Tx};
use time::OffsetDateTime;
use uuid::Uuid;

/// Delete a project with its bindings, recording each binding's end and the
/// project's deletion in the workspace's history.
pub async fn delete_project(
    tx: &mut Tx,
    p: &ProjectRecord,
    initiator: &Initiator,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for b in tx.project_bindings(p.id).await? {
        let removed = BindingRemoved {
            binding: b.binding.id,
            project: p.identifier.clone(),
            subject: format!("{}:{}", b.binding.subject.kind, b.subject_name),
            role: b.role_identifier,
            expires_at: b.binding.expires_at,
            reason: Some("project deleted".to_owned()),
            request: None,
        };
        tx.record(Some(p.workspace_id), now, initiator, removed.into())?;
    }
    tx.delete_project(p.id).await?;
    tx.record(Some(p.workspace_id), now, initiator, ProjectDeleted { project: p.identifier.clone() }.into())?;
    Ok(())
}

/// After a tenant of a project being deleted went or was declined: delete
/// the project when no tenant is left, or end its deletion when only
/// declined tenants are left (they become ordinary tenants again).
pub async fn settle_project(
    tx: &mut Tx,
    project_id: Uuid,
    initiator: &Initiator,
    now: OffsetDateTime,
) -> Result<ProjectOutcome, StoreError> {
    let Some(p) = tx.project_by_id(project_id).await? else { return Ok(ProjectOutcome::Delete) };
    if p.deletion_requested_at.is_none() {
        return Ok(ProjectOutcome::Wait);
    }
    let tenants = tx.project_tenants(p.id).await?;
    let states: Vec<Option<TenantDeletion>> = tenants.iter().map(|t| t.deletion).collect();
    let outcome = project_outcome(&states);
    match outcome {
        ProjectOutcome::Wait => {}
        ProjectOutcome::Delete => delete_project(tx, &p, initiator, now).await?,
        ProjectOutcome::KeepDeclined => {
            for t in &tenants {
                tx.set_tenant_deletion(t.id, None, &[], now).await?;
            }
            tx.set_project_deletion(p.id, None).await?;
            let kept = tenants.iter().map(|t| t.platform.clone()).collect();
            let declined = ProjectDeletionDeclined { project: p.identifier, kept_tenants: kept };
            tx.record(Some(p.workspace_id), now, initiator, declined.into())?;
        }
    }
    Ok(outcome)
}
