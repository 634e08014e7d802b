//! Workspace access: members, invitations and type-ahead (WS3–WS6, AC9).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{InviteMember, Member, Page, Problem, SearchResult, UpdateMember};
use canopy_domain::authz::{Action, action_to_grant};
use canopy_domain::history::EventKind;
use canopy_domain::mail::AccessChange;
use canopy_domain::{Email, SearchTerm, Subject, SubjectKind, WorkspaceRole};
use canopy_store::{Tx, WorkspaceRecord};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::{ListQuery, load_workspace, page, subject_string};

/// A member named in a path: `user:NAME`, `group:IDENTIFIER` or `email:ADDRESS`.
enum MemberRef {
    Subject(Subject, String),
    Invitation(String),
}

async fn resolve_member(tx: &mut Tx, raw: &str) -> ApiResult<MemberRef> {
    let not_found = || {
        ApiError::not_found(format!("no member {raw:?}; name members as user:NAME, group:IDENTIFIER or email:ADDRESS"))
    };
    let (kind, name) = raw.split_once(':').ok_or_else(not_found)?;
    match kind {
        "user" => {
            let u = tx.user_by_username(name).await?.ok_or_else(not_found)?;
            Ok(MemberRef::Subject(Subject::user(u.id), raw.to_owned()))
        }
        "group" => {
            let g = tx.group_by_identifier(name).await?.ok_or_else(not_found)?;
            Ok(MemberRef::Subject(Subject::group(g.id), raw.to_owned()))
        }
        "email" => Ok(MemberRef::Invitation(Email::parse(name).map_err(|_| not_found())?.into_string())),
        _ => Err(not_found()),
    }
}

fn parse_role(raw: &str) -> ApiResult<WorkspaceRole> {
    raw.parse().map_err(|e: canopy_domain::InvalidValue| ApiError::invalid("role", e.to_string()))
}

/// Refuse to leave a workspace without a user as direct owner. (Owning
/// groups do not count, since they may be empty, so changing one is never
/// refused by this rule.)
async fn keep_an_owner(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    subject: Subject,
    old: WorkspaceRole,
    new: Option<WorkspaceRole>,
) -> ApiResult<()> {
    if subject.kind == SubjectKind::User && old == WorkspaceRole::Owner && new != Some(WorkspaceRole::Owner) {
        tx.lock_workspace(ws.id).await?;
        if tx.count_owners(ws.id).await? <= 1 {
            return Err(ApiError::conflict(format!("workspace {} must keep at least one owner", ws.identifier)));
        }
    }
    Ok(())
}

/// Current access: every user and group with their role, who granted it and
/// when, and pending invitations (WS5).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/members", tag = "members", params(("ws" = String, Path), ListQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<Member>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Member>>> {
    let limit = q.limit()?;
    let cursor = q.cursor()?;
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewWorkspace).await?;
    let mut all: Vec<Member> = tx
        .workspace_members(ws.id)
        .await?
        .into_iter()
        .map(|m| Member {
            subject: subject_string(m.kind, &m.name),
            kind: m.kind.as_str().into(),
            name: m.name,
            display_name: m.display_name,
            role: m.role.as_str().into(),
            granted_by: m.granted_by,
            granted_at: m.granted_at,
        })
        .collect();
    all.extend(tx.workspace_invitations(ws.id).await?.into_iter().map(|i| Member {
        subject: format!("email:{}", i.email),
        kind: "invitation".into(),
        name: i.email.clone(),
        display_name: i.email,
        role: i.role.as_str().into(),
        granted_by: i.invited_by,
        granted_at: i.created_at,
    }));
    all.sort_by(|a, b| a.subject.cmp(&b.subject));
    let rows: Vec<Member> =
        all.into_iter().filter(|m| cursor.as_deref().is_none_or(|c| m.subject.as_str() > c)).collect();
    Ok(Json(page(rows, limit, |m| m.subject.clone(), |m| m)))
}

/// Invite a user, an e-mail address or a group with a workspace role (WS3, WS4).
///
/// An e-mail address that no account has becomes a pending invitation, which
/// turns into membership when an account with that address first signs in.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/members", tag = "members", params(("ws" = String, Path)), request_body = InviteMember,
    security(("bearer" = [])),
    responses((status = 201, body = Member), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn invite(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<InviteMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let given = [body.user.is_some(), body.email.is_some(), body.group.is_some()].iter().filter(|b| **b).count();
    if given != 1 {
        return Err(ApiError::invalid("user", "give exactly one of user, email or group"));
    }
    let role = parse_role(&body.role)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, action_to_grant(role)).await?;
    let granted_by = caller.actor.name.clone();
    let initiator = caller.initiator();

    // Resolve the invited subject; an e-mail of a known account invites that account.
    let mut subject = None;
    if let Some(username) = &body.user {
        let u = tx
            .user_by_username(username)
            .await?
            .ok_or_else(|| ApiError::invalid("user", format!("user {username:?} does not exist")))?;
        if !u.active {
            return Err(ApiError::invalid("user", format!("the account of {username} is deactivated")));
        }
        subject = Some((SubjectKind::User, u.id, u.username.clone(), u.display_name()));
    } else if let Some(group) = &body.group {
        let g = tx
            .group_by_identifier(group)
            .await?
            .ok_or_else(|| ApiError::invalid("group", format!("group {group:?} does not exist")))?;
        subject = Some((SubjectKind::Group, g.id, g.identifier, g.display_name));
    } else if let Some(raw) = &body.email {
        let email = Email::parse(raw).map_err(|e| ApiError::invalid("email", e.to_string()))?;
        match tx.user_by_email(email.as_str()).await? {
            Some(u) if !u.active => {
                return Err(ApiError::invalid("email", format!("the account with the address {email} is deactivated")));
            }
            Some(u) => subject = Some((SubjectKind::User, u.id, u.username.clone(), u.display_name())),
            None => {
                if tx.invitation(ws.id, email.as_str()).await?.is_some() {
                    return Err(ApiError::conflict_on(
                        "email",
                        format!("{email} is already invited to {}", ws.identifier),
                    ));
                }
                tx.insert_invitation(ws.id, email.as_str(), role, &granted_by, now).await?;
                let announcement = canopy_domain::mail::invitation(
                    &email,
                    &ws.identifier,
                    &ws.display_name,
                    role,
                    &granted_by,
                    app.config.public_url.as_deref(),
                );
                tx.enqueue_mail(&announcement, now).await?;
                tx.append_event(
                    Some(ws.id),
                    EventKind::InvitationSent,
                    now,
                    &initiator,
                    json!({"email": email.as_str(), "role": role.as_str()}),
                )
                .await?;
                tx.commit().await?;
                let member = Member {
                    subject: format!("email:{email}"),
                    kind: "invitation".into(),
                    name: email.to_string(),
                    display_name: email.to_string(),
                    role: role.as_str().into(),
                    granted_by,
                    granted_at: now,
                };
                return Ok((StatusCode::CREATED, Json(member)));
            }
        }
    }
    let Some((kind, id, name, display_name)) = subject else {
        return Err(ApiError::invalid("user", "give exactly one of user, email or group"));
    };
    let field = if kind == SubjectKind::Group {
        "group"
    } else if body.user.is_some() {
        "user"
    } else {
        "email"
    };
    if tx.member_role(ws.id, kind, id).await?.is_some() {
        return Err(ApiError::conflict_on(
            field,
            format!(
                "{} is already a member of {}; change the role instead",
                subject_string(kind, &name),
                ws.identifier
            ),
        ));
    }
    tx.upsert_member(ws.id, kind, id, role, &granted_by, now).await?;
    tx.append_event(
        Some(ws.id),
        EventKind::MemberAdded,
        now,
        &initiator,
        json!({"subject": subject_string(kind, &name), "role": role.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Member {
            subject: subject_string(kind, &name),
            kind: kind.as_str().into(),
            name,
            display_name,
            role: role.as_str().into(),
            granted_by,
            granted_at: now,
        }),
    ))
}

/// Change the workspace role of a member or of a pending invitation (WS6).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/members/{subject}", tag = "members",
    params(("ws" = String, Path), ("subject" = String, Path, description = "user:NAME, group:IDENTIFIER or email:ADDRESS")),
    request_body = UpdateMember, security(("bearer" = [])),
    responses((status = 200, body = Member), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, subject)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> ApiResult<Json<Member>> {
    let role = parse_role(&body.role)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let not_member = || ApiError::not_found(format!("{subject} is not a member of {}", ws.identifier));
    match resolve_member(&mut tx, &subject).await? {
        MemberRef::Subject(s, name) => {
            let old = tx.member_role(ws.id, s.kind, s.id).await?.ok_or_else(not_member)?;
            caller.require_in(&mut tx, &ws, action_to_grant(old.max(role))).await?;
            keep_an_owner(&mut tx, &ws, s, old, Some(role)).await?;
            tx.upsert_member(ws.id, s.kind, s.id, role, &caller.actor.name, now).await?;
            tx.append_event(
                Some(ws.id),
                EventKind::MemberRoleChanged,
                now,
                &caller.initiator(),
                json!({"subject": name, "old_role": old.as_str(), "new_role": role.as_str()}),
            )
            .await?;
            let m = tx
                .workspace_members(ws.id)
                .await?
                .into_iter()
                .find(|m| m.subject_id == s.id && m.kind == s.kind)
                .ok_or_else(not_member)?;
            tx.commit().await?;
            Ok(Json(Member {
                subject: name,
                kind: m.kind.as_str().into(),
                name: m.name,
                display_name: m.display_name,
                role: m.role.as_str().into(),
                granted_by: m.granted_by,
                granted_at: m.granted_at,
            }))
        }
        MemberRef::Invitation(email) => {
            let inv = tx.invitation(ws.id, &email).await?.ok_or_else(not_member)?;
            caller.require_in(&mut tx, &ws, action_to_grant(inv.role.max(role))).await?;
            tx.delete_invitation(inv.id).await?;
            tx.insert_invitation(ws.id, &email, role, &caller.actor.name, now).await?;
            tx.append_event(
                Some(ws.id),
                EventKind::MemberRoleChanged,
                now,
                &caller.initiator(),
                json!({"subject": format!("email:{email}"), "old_role": inv.role.as_str(), "new_role": role.as_str()}),
            )
            .await?;
            tx.commit().await?;
            Ok(Json(Member {
                subject: format!("email:{email}"),
                kind: "invitation".into(),
                name: email.clone(),
                display_name: email,
                role: role.as_str().into(),
                granted_by: caller.actor.name.clone(),
                granted_at: now,
            }))
        }
    }
}

/// Remove a member (or withdraw an invitation). The subject's project
/// bindings in this workspace end with the membership (WS6).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/members/{subject}", tag = "members",
    params(("ws" = String, Path), ("subject" = String, Path, description = "user:NAME, group:IDENTIFIER or email:ADDRESS")),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, subject)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let not_member = || ApiError::not_found(format!("{subject} is not a member of {}", ws.identifier));
    let initiator = caller.initiator();
    match resolve_member(&mut tx, &subject).await? {
        MemberRef::Subject(s, name) => {
            let old = tx.member_role(ws.id, s.kind, s.id).await?.ok_or_else(not_member)?;
            caller.require_in(&mut tx, &ws, action_to_grant(old)).await?;
            keep_an_owner(&mut tx, &ws, s, old, None).await?;
            let removal = Removal { initiator: &initiator, reason: "removed from workspace", now };
            end_membership(&mut tx, ws.id, s, &name, old, &removal).await?;
        }
        MemberRef::Invitation(email) => {
            let inv = tx.invitation(ws.id, &email).await?.ok_or_else(not_member)?;
            caller.require_in(&mut tx, &ws, action_to_grant(inv.role)).await?;
            tx.delete_invitation(inv.id).await?;
            tx.append_event(
                Some(ws.id),
                EventKind::InvitationWithdrawn,
                now,
                &initiator,
                json!({"email": email, "role": inv.role.as_str()}),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who ends a membership, why, and when.
pub struct Removal<'a> {
    pub initiator: &'a canopy_domain::history::Initiator,
    pub reason: &'a str,
    pub now: time::OffsetDateTime,
}

/// End a subject's membership of a workspace and, with it, its project
/// bindings there (WS6), recording each in the workspace's history.
///
/// Removing a person ends their bindings in the workspace even when a group
/// keeps them a member: the removal states the intent to take their access
/// away. Removing a group ends the bindings of its members who are no longer
/// members at all. The workspace row is locked first, so that concurrent
/// membership changes see each other (see [`end_bindings_of_non_members`]).
pub async fn end_membership(
    tx: &mut Tx,
    workspace_id: uuid::Uuid,
    subject: Subject,
    name: &str,
    old_role: WorkspaceRole,
    removal: &Removal<'_>,
) -> ApiResult<()> {
    let Removal { initiator, reason, now } = *removal;
    tx.lock_workspace(workspace_id).await?;
    let ws_name = tx.workspace_by_id(workspace_id).await?.map(|w| w.identifier).unwrap_or_default();
    for b in tx.subject_bindings_in_workspace(workspace_id, subject).await? {
        let project = tx.project_by_id(b.binding.project_id).await?.map(|p| p.identifier).unwrap_or_default();
        let what = (ws_name.as_str(), project.as_str(), b.role_identifier.as_str());
        crate::routes::bindings::notify(tx, &b, AccessChange::Removed, what, &initiator.name, now).await?;
        tx.delete_binding(b.binding.id).await?;
        let details = json!({"binding": b.binding.id, "project": project, "subject": name, "role": b.role_identifier, "reason": reason});
        tx.append_event(Some(workspace_id), EventKind::BindingRemoved, now, initiator, details).await?;
    }
    tx.delete_member(workspace_id, subject.kind, subject.id).await?;
    let details = json!({"subject": name, "old_role": old_role.as_str(), "reason": reason});
    tx.append_event(Some(workspace_id), EventKind::MemberRemoved, now, initiator, details).await?;
    if subject.kind == SubjectKind::Group {
        // members who belonged only through this group leave with it
        let members: Vec<_> = tx.group_members(subject.id).await?.into_iter().map(|u| u.id).collect();
        end_bindings_of_non_members(tx, workspace_id, &members, removal).await?;
    }
    Ok(())
}

/// End the direct project bindings in a workspace of those `users` who are
/// no longer its members, neither directly nor through a group (WS6: access
/// leaves with the person).
pub async fn end_bindings_of_non_members(
    tx: &mut Tx,
    workspace_id: uuid::Uuid,
    users: &[uuid::Uuid],
    removal: &Removal<'_>,
) -> ApiResult<()> {
    // Lock the workspace before deciding who is still a member: a concurrent
    // change of membership (a group leaving, a user leaving a group) waits,
    // then sees this one, so one of the two always ends the binding.
    tx.lock_workspace(workspace_id).await?;
    for &user in users {
        if !tx.membership_roles_of_user(workspace_id, user).await?.is_empty() {
            continue;
        }
        let Some(u) = tx.user_by_id(user).await? else { continue };
        let name = subject_string(SubjectKind::User, &u.username);
        let ws_name = tx.workspace_by_id(workspace_id).await?.map(|w| w.identifier).unwrap_or_default();
        for b in tx.subject_bindings_in_workspace(workspace_id, Subject::user(user)).await? {
            let project = tx.project_by_id(b.binding.project_id).await?.map(|p| p.identifier).unwrap_or_default();
            let what = (ws_name.as_str(), project.as_str(), b.role_identifier.as_str());
            crate::routes::bindings::notify(tx, &b, AccessChange::Removed, what, &removal.initiator.name, removal.now)
                .await?;
            tx.delete_binding(b.binding.id).await?;
            let details = json!({"binding": b.binding.id, "project": project, "subject": name, "role": b.role_identifier,
                "reason": format!("no longer a member of the workspace ({})", removal.reason)});
            tx.append_event(Some(workspace_id), EventKind::BindingRemoved, removal.now, removal.initiator, details)
                .await?;
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Part of a first or last name, e-mail, username, group name or identifier.
    #[param(min_length = 1, max_length = 100)]
    pub q: String,
    /// At most this many matches, 1 to 50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

/// Type-ahead over the workspace's users and groups (AC9).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/search", tag = "members", params(("ws" = String, Path), SearchQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<SearchResult>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn search(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Page<SearchResult>>> {
    let limit = match q.limit {
        None => 10,
        Some(n) if (1..=50).contains(&n) => n,
        Some(_) => return Err(ApiError::invalid("limit", "must be between 1 and 50")),
    };
    let term = SearchTerm::parse(&q.q).map_err(|e| ApiError::invalid("q", e.0))?;
    let term = term.as_str();
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewWorkspace).await?;
    let items = tx
        .search_workspace(ws.id, term, limit)
        .await?
        .into_iter()
        .map(|r| SearchResult {
            kind: r.kind.as_str().into(),
            subject: subject_string(r.kind, &r.name),
            name: r.name,
            display_name: r.display_name,
            email: r.email,
        })
        .collect();
    Ok(Json(Page { items, next_cursor: None }))
}
