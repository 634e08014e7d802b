//! Records and outcomes of the application layer as the REST API's bodies.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use canopy_api_types::{
    Binding, ExpiringAccess, FourEyeSetting, Member, ProjectDeletion, RequestApproval, RoleRequest, Tenant,
    TenantDeletionState, Workspace, WorkspaceFourEye,
};
use canopy_app::deletion::DeletionView;
use canopy_app::expired_access::Expiring;
use canopy_app::load::subject_string;
use canopy_app::members::MemberView;
use canopy_app::requests::RequestView;
use canopy_app::workspaces::WorkspaceView;
use canopy_domain::deletion::TenantDeletion;
use canopy_domain::four_eye::{FourEye, RequestState};
use canopy_store::{BindingRecord, TenantRecord};
use time::OffsetDateTime;

/// A four-eye request as the API shows it.
pub fn to_request(view: RequestView) -> RoleRequest {
    let RequestView { request: q, needs_admin } = view;
    RoleRequest {
        id: q.id,
        subject: q.subject_string(),
        workspace: q.workspace,
        project: q.project,
        kind: q.kind.as_str().into(),
        state: q.state.as_str().into(),
        binding: q.binding_id,
        role: q.role,
        expires_at: q.expires_at,
        from_role: q.from_role,
        from_expires_at: q.from_expires_at,
        justification: q.justification,
        requested_by: q.requested_by,
        requested_at: q.requested_at,
        approvals_required: q.approvals_required,
        approvals: q
            .approvals
            .into_iter()
            .map(|a| RequestApproval { approver: a.approver, approved_at: a.approved_at })
            .collect(),
        needs_admin: needs_admin && q.state == RequestState::Pending,
        decided_by: q.decided_by,
        decided_at: q.decided_at,
        reason: q.reason,
    }
}

/// A workspace member or invitation as the API shows it (WS5).
pub fn to_member(m: MemberView) -> Member {
    Member {
        subject: m.subject,
        kind: m.kind.into(),
        name: m.name,
        display_name: m.display_name,
        role: m.role.as_str().into(),
        granted_by: m.granted_by,
        granted_at: m.granted_at,
    }
}

/// Where a project's deletion stands, per tenant (DL1-DL5).
pub fn deletion_view(d: &DeletionView) -> ProjectDeletion {
    let (ws, p, tenants) = (&d.workspace, &d.project, &d.tenants);
    let states: Vec<Option<TenantDeletion>> = tenants.iter().map(|t| t.deletion).collect();
    let state = if states.contains(&Some(TenantDeletion::Requested)) {
        "awaiting_confirmation"
    } else if states.iter().any(|s| matches!(s, Some(TenantDeletion::Deleting | TenantDeletion::AwaitingEngineer))) {
        "in_progress"
    } else {
        "none"
    };
    ProjectDeletion {
        workspace: ws.identifier.clone(),
        project: p.identifier.clone(),
        project_deletion: p.deletion_requested_at.is_some(),
        state: state.to_owned(),
        tenants: tenants
            .iter()
            .map(|t| TenantDeletionState {
                id: t.id,
                platform: t.platform.clone(),
                mode: t.deletion_mode.as_str().to_owned(),
                state: t.deletion.map(|d| d.as_str().to_owned()),
                resources: t.deletion_resources.clone(),
            })
            .collect(),
    }
}

/// The answer to a deletion request: 204 when the project went at once
/// (it had no tenants), else 202 with where the deletion stands.
pub fn deletion_requested(outcome: Option<DeletionView>) -> Response {
    match outcome {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(d) => (StatusCode::ACCEPTED, Json(deletion_view(&d))).into_response(),
    }
}

pub fn to_binding(b: BindingRecord, now: OffsetDateTime) -> Binding {
    Binding {
        id: b.binding.id,
        subject: subject_string(b.binding.subject.kind, &b.subject_name),
        kind: b.binding.subject.kind.as_str().into(),
        in_force: b.binding.in_force_at(now),
        name: b.subject_name,
        display_name: b.subject_display_name,
        role: b.role_identifier,
        expires_at: b.binding.expires_at,
        justification: b.justification,
        granted_by: b.granted_by,
        granted_at: b.granted_at,
    }
}

pub fn to_tenant(t: TenantRecord, workspace: &str, project: &str) -> Tenant {
    Tenant {
        workspace: workspace.to_owned(),
        project: project.to_owned(),
        platform: t.platform,
        platform_type: t.platform_type.as_str().to_owned(),
        landing_zone: t.landing_zone,
        name: t.name,
        external_id: t.external_id,
        status: t.status.as_str().to_owned(),
        last_error: t.last_error,
        next_attempt_at: t.next_attempt_at,
        last_replicated_at: t.last_replicated_at,
        created_at: t.created_at,
        deletion: t.deletion.map(|d| d.as_str().to_owned()),
    }
}

pub fn to_expiring(e: Expiring) -> ExpiringAccess {
    let b = e.binding;
    ExpiringAccess {
        binding: b.binding.id,
        workspace: e.workspace,
        project: e.project,
        subject: subject_string(b.binding.subject.kind, &b.subject_name),
        display_name: b.subject_display_name,
        role: b.role_identifier,
        expires_at: e.expires_at,
        state: e.state.as_str().into(),
    }
}

pub fn to_setting(f: FourEye) -> FourEyeSetting {
    FourEyeSetting { enabled: f.enabled, approvals: f.approvals }
}

/// A workspace as the API shows it, with the caller's role and its four-eye setting (FE1).
pub fn to_workspace(v: WorkspaceView) -> Workspace {
    Workspace {
        identifier: v.workspace.identifier,
        display_name: v.workspace.display_name,
        created_at: v.workspace.created_at,
        my_role: v.my_role.map(|r| r.as_str().to_owned()),
        four_eye: WorkspaceFourEye {
            enabled: v.four_eye.enabled,
            approvals: v.four_eye.approvals,
            source: v.four_eye_source.as_str().into(),
        },
    }
}
