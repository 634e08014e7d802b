//! What follows a tenant deletion (DL1, DL5): the project goes when its last
//! tenant went, or stays with the declined ones. Called in the transaction
//! that removed or declined a tenant, by the engine and by the API alike.

use canopy_domain::deletion::{ProjectOutcome, TenantDeletion, project_outcome};
use canopy_domain::history::{EventKind, Initiator};
use canopy_store::{ProjectRecord, StoreError, Tx};
use serde_json::json;
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
        let subject = format!("{}:{}", b.binding.subject.kind, b.subject_name);
        tx.append_event(
            Some(p.workspace_id),
            EventKind::BindingRemoved,
            now,
            initiator,
            json!({"binding": b.binding.id, "project": p.identifier, "subject": subject,
                   "role": b.role_identifier, "reason": "project deleted"}),
        )
        .await?;
    }
    tx.delete_project(p.id).await?;
    tx.append_event(Some(p.workspace_id), EventKind::ProjectDeleted, now, initiator, json!({"project": p.identifier}))
        .await?;
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
            let kept: Vec<&str> = tenants.iter().map(|t| t.platform.as_str()).collect();
            tx.append_event(
                Some(p.workspace_id),
                EventKind::ProjectDeletionDeclined,
                now,
                initiator,
                json!({"project": p.identifier, "kept_tenants": kept}),
            )
            .await?;
        }
    }
    Ok(outcome)
}
