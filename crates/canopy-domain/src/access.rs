//! Subjects, bindings and the one rule of when a binding grants access.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::names::InvalidValue;

/// What kind of subject holds a membership or a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    User,
    Group,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
        }
    }
}

impl FromStr for SubjectKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Self::User),
            "group" => Ok(Self::Group),
            _ => Err(InvalidValue("must be user or group".into())),
        }
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user or a group, by internal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    pub kind: SubjectKind,
    pub id: Uuid,
}

impl Subject {
    pub fn user(id: Uuid) -> Self {
        Self { kind: SubjectKind::User, id }
    }
    pub fn group(id: Uuid) -> Self {
        Self { kind: SubjectKind::Group, id }
    }
}

/// A project binding: a subject holds a project role, possibly until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub id: Uuid,
    pub project_id: Uuid,
    pub subject: Subject,
    pub role_id: Uuid,
    pub expires_at: Option<OffsetDateTime>,
}

impl Binding {
    /// Whether this binding grants its role at instant `at` (AC7).
    ///
    /// This is the only definition of "in force": the API, the access lists,
    /// the expiry job and replication all ask this function.
    pub fn in_force_at(&self, at: OffsetDateTime) -> bool {
        in_force_at(self.expires_at, at)
    }
}

/// A binding that expires at `expires_at` (none: never) is in force at `at`
/// exactly when `at` is before the expiry instant.
pub fn in_force_at(expires_at: Option<OffsetDateTime>, at: OffsetDateTime) -> bool {
    expires_at.is_none_or(|e| at < e)
}

/// How long before its expiration a binding counts as expiring soon (AC8).
pub const EXPIRING_SOON: time::Duration = time::Duration::days(7);

/// Where a binding stands on the expired-access list (AC8): expired (red),
/// or expiring within [`EXPIRING_SOON`] (yellow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryState {
    Expired,
    Soon,
}

impl ExpiryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Soon => "soon",
        }
    }
}

/// Whether a binding expiring at `expires_at` belongs on the expired-access
/// list at `now`, and how; `None` for one far from its expiration or with none.
pub fn expiry_state(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> Option<ExpiryState> {
    let e = expires_at?;
    if !in_force_at(Some(e), now) {
        Some(ExpiryState::Expired)
    } else if e - now <= EXPIRING_SOON {
        Some(ExpiryState::Soon)
    } else {
        None
    }
}

/// How long after its expiration an ended binding is still news: the
/// people it reached are e-mailed that it expired (AC11) within this, and
/// not after it (a database upgraded to the expiry job, or a very long
/// stop: the history records the end, nobody needs the e-mail).
pub const EXPIRED_NOTICE_WITHIN: time::Duration = time::Duration::days(7);

/// Whether ending a binding that expired at `expires_at` tells the people
/// it reached (AC7, AC11): it has expired by `now`, at most
/// [`EXPIRED_NOTICE_WITHIN`] ago.
pub fn expiry_notice_due(expires_at: OffsetDateTime, now: OffsetDateTime) -> bool {
    !in_force_at(Some(expires_at), now) && now - expires_at <= EXPIRED_NOTICE_WITHIN
}

/// An expiration date given for a new or changed binding must lie in the future.
pub fn check_new_expiry(expires_at: OffsetDateTime, now: OffsetDateTime) -> Result<(), InvalidValue> {
    if expires_at <= now {
        return Err(InvalidValue("must be in the future".into()));
    }
    Ok(())
}

/// The expiration of a new or changed binding: in the future and, where the
/// installation sets a maximum duration for access, set and within it.
pub fn check_binding_expiry(
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    maximum: Option<time::Duration>,
) -> Result<(), InvalidValue> {
    if let Some(e) = expires_at {
        check_new_expiry(e, now)?;
    }
    match (expires_at, maximum) {
        (None, Some(max)) => Err(InvalidValue(format!(
            "is required: this installation grants access for at most {} days",
            max.whole_days()
        ))),
        (Some(e), Some(max)) if e - now > max => Err(InvalidValue(format!(
            "must be within {} days from now, the most this installation grants",
            max.whole_days()
        ))),
        _ => Ok(()),
    }
}

/// A user as access rules see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserStatus {
    pub id: Uuid,
    pub active: bool,
}

/// The people a binding of `subject` reaches: the user, or every member of
/// the group (`group_members`, as expanded from the store). The one rule for
/// "whose access does this change", used by access (AC3) and four-eye (SE3).
pub fn people_reached(subject: Subject, group_members: &BTreeMap<Uuid, BTreeSet<Uuid>>) -> BTreeSet<Uuid> {
    match subject.kind {
        SubjectKind::User => BTreeSet::from([subject.id]),
        SubjectKind::Group => group_members.get(&subject.id).cloned().unwrap_or_default(),
    }
}

/// The project roles each user effectively holds at `at` (AC2, AC3, AC10):
/// direct bindings plus bindings of every group the user is a member of now,
/// counting only bindings in force and only active users.
pub fn effective_project_roles(
    bindings: &[Binding],
    group_members: &BTreeMap<Uuid, BTreeSet<Uuid>>,
    users: &[UserStatus],
    at: OffsetDateTime,
) -> BTreeMap<Uuid, BTreeSet<Uuid>> {
    let active: BTreeSet<Uuid> = users.iter().filter(|u| u.active).map(|u| u.id).collect();
    let mut out: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
    for b in bindings.iter().filter(|b| b.in_force_at(at)) {
        for user in people_reached(b.subject, group_members).into_iter().filter(|u| active.contains(u)) {
            out.entry(user).or_default().insert(b.role_id);
        }
    }
    out
}

/// What granting a subject a role on a project does, given the binding of
/// that subject and role the project may hold already (AC2, AC6, AC7): one
/// in force makes the grant a conflict; an ended one is replaced (its
/// history kept), so binding again restores access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// No such binding: make one.
    Create,
    /// The subject holds the role already.
    AlreadyHeld,
    /// An expired or ended binding of the same role: replace it.
    ReplaceEnded(Uuid),
}

/// The [`Grant`] for `existing`, at `now`.
pub fn grant(existing: Option<&Binding>, now: OffsetDateTime) -> Grant {
    match existing {
        None => Grant::Create,
        Some(b) if b.in_force_at(now) => Grant::AlreadyHeld,
        Some(b) => Grant::ReplaceEnded(b.id),
    }
}

/// Whether a subject may hold project roles in a workspace now (AC1,
/// AC10): a user with an active account who is a member (directly or
/// through a group), or a group that is a member.
pub fn may_hold_project_roles(kind: SubjectKind, active: bool, member: bool) -> bool {
    member && (kind == SubjectKind::Group || active)
}

/// Until when an emergency grant (AD3) leaves a binding the subject holds
/// already: the later of its end and the asked one. An emergency never
/// shortens access someone has, and access without an end keeps none.
pub fn emergency_end(held_until: Option<OffsetDateTime>, asked: OffsetDateTime) -> Option<OffsetDateTime> {
    match held_until {
        Some(old) if old < asked => Some(asked),
        old => old,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn binding(subject: Subject, role: Uuid, expires_at: Option<OffsetDateTime>) -> Binding {
        Binding { id: Uuid::new_v4(), project_id: Uuid::nil(), subject, role_id: role, expires_at }
    }

    #[test]
    fn ac8_expired_is_red_and_within_seven_days_is_yellow() {
        let now = datetime!(2026-12-01 12:00 UTC);
        assert_eq!(expiry_state(None, now), None);
        assert_eq!(expiry_state(Some(now), now), Some(ExpiryState::Expired));
        assert_eq!(expiry_state(Some(now - time::Duration::days(30)), now), Some(ExpiryState::Expired));
        assert_eq!(expiry_state(Some(now + time::Duration::seconds(1)), now), Some(ExpiryState::Soon));
        assert_eq!(expiry_state(Some(now + EXPIRING_SOON), now), Some(ExpiryState::Soon));
        assert_eq!(expiry_state(Some(now + EXPIRING_SOON + time::Duration::seconds(1)), now), None);
    }

    #[test]
    fn ac7_binding_is_in_force_until_its_expiry_instant() {
        let e = datetime!(2026-12-01 12:00 UTC);
        assert!(in_force_at(Some(e), datetime!(2026-12-01 11:59:59 UTC)));
        assert!(!in_force_at(Some(e), e));
        assert!(!in_force_at(Some(e), datetime!(2027-01-01 0:00 UTC)));
        assert!(in_force_at(None, datetime!(2999-01-01 0:00 UTC)));
    }

    #[test]
    fn ac3_group_binding_reaches_current_members_only() {
        let (ann, bob, group, role) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let users = [UserStatus { id: ann, active: true }, UserStatus { id: bob, active: true }];
        let b = [binding(Subject::group(group), role, None)];
        let now = datetime!(2026-11-23 0:00 UTC);
        let mut members = BTreeMap::from([(group, BTreeSet::from([ann]))]);
        let eff = effective_project_roles(&b, &members, &users, now);
        assert!(eff.contains_key(&ann) && !eff.contains_key(&bob));
        // bob joins, ann leaves
        members.insert(group, BTreeSet::from([bob]));
        let eff = effective_project_roles(&b, &members, &users, now);
        assert!(eff.contains_key(&bob) && !eff.contains_key(&ann));
    }

    #[test]
    fn ac2_several_roles_on_one_project_accumulate() {
        let (ann, r1, r2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let users = [UserStatus { id: ann, active: true }];
        let b = [binding(Subject::user(ann), r1, None), binding(Subject::user(ann), r2, None)];
        let eff = effective_project_roles(&b, &BTreeMap::new(), &users, datetime!(2026-11-23 0:00 UTC));
        assert_eq!(eff.get(&ann), Some(&BTreeSet::from([r1, r2])));
    }

    #[test]
    fn ac10_inactive_user_has_no_effective_access() {
        let (ann, role) = (Uuid::new_v4(), Uuid::new_v4());
        let users = [UserStatus { id: ann, active: false }];
        let b = [binding(Subject::user(ann), role, None)];
        assert!(effective_project_roles(&b, &BTreeMap::new(), &users, datetime!(2026-11-23 0:00 UTC)).is_empty());
    }

    #[test]
    fn ac7_expiry_must_be_in_the_future() {
        let now = datetime!(2026-11-23 0:00 UTC);
        assert!(check_new_expiry(now, now).is_err());
        assert!(check_new_expiry(datetime!(2026-11-23 0:00:01 UTC), now).is_ok());
    }

    #[test]
    fn ac7_expiry_must_lie_within_the_installation_maximum() {
        let now = datetime!(2026-11-23 0:00 UTC);
        let max = Some(time::Duration::days(90));
        assert!(check_binding_expiry(None, now, None).is_ok());
        assert!(check_binding_expiry(None, now, max).is_err());
        assert!(check_binding_expiry(Some(now + time::Duration::days(90)), now, max).is_ok());
        assert!(check_binding_expiry(Some(now + time::Duration::days(91)), now, max).is_err());
        assert!(check_binding_expiry(Some(now), now, None).is_err());
    }

    proptest! {
        #[test]
        fn ac7_expired_bindings_never_grant(offset in -1_000_000i64..1_000_000) {
            let (ann, role) = (Uuid::new_v4(), Uuid::new_v4());
            let e = datetime!(2026-11-23 0:00 UTC);
            let at = e + time::Duration::seconds(offset);
            let users = [UserStatus { id: ann, active: true }];
            let b = [binding(Subject::user(ann), role, Some(e))];
            let eff = effective_project_roles(&b, &BTreeMap::new(), &users, at);
            prop_assert_eq!(eff.contains_key(&ann), at < e);
        }
    }

    #[test]
    fn ad3_an_emergency_grant_never_shortens_access() {
        let t = |h| OffsetDateTime::UNIX_EPOCH + time::Duration::hours(h);
        assert_eq!(emergency_end(Some(t(1)), t(5)), Some(t(5)));
        assert_eq!(emergency_end(Some(t(9)), t(5)), Some(t(9)));
        assert_eq!(emergency_end(None, t(5)), None);
    }

    #[test]
    fn ac1_only_active_members_and_member_groups_may_hold_project_roles() {
        assert!(may_hold_project_roles(SubjectKind::User, true, true));
        assert!(!may_hold_project_roles(SubjectKind::User, false, true));
        assert!(!may_hold_project_roles(SubjectKind::User, true, false));
        assert!(may_hold_project_roles(SubjectKind::Group, false, true));
        assert!(!may_hold_project_roles(SubjectKind::Group, true, false));
    }

    #[test]
    fn ac11_an_expired_binding_is_mailed_only_within_a_week_of_its_expiry() {
        let e = datetime!(2026-12-01 12:00 UTC);
        assert!(!expiry_notice_due(e, e - time::Duration::seconds(1)), "still in force");
        assert!(expiry_notice_due(e, e));
        assert!(expiry_notice_due(e, e + EXPIRED_NOTICE_WITHIN));
        assert!(!expiry_notice_due(e, e + EXPIRED_NOTICE_WITHIN + time::Duration::seconds(1)), "stale");
    }

    #[test]
    fn ac6_granting_a_role_again_replaces_an_ended_binding_and_refuses_a_held_one() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let b = |expires_at| Binding {
            id: Uuid::nil(),
            project_id: Uuid::nil(),
            subject: Subject::user(Uuid::nil()),
            role_id: Uuid::nil(),
            expires_at,
        };
        assert_eq!(grant(None, now), Grant::Create);
        assert_eq!(grant(Some(&b(None)), now), Grant::AlreadyHeld);
        assert_eq!(grant(Some(&b(Some(datetime!(2026-12-02 0:00 UTC)))), now), Grant::AlreadyHeld);
        assert_eq!(grant(Some(&b(Some(datetime!(2026-11-30 0:00 UTC)))), now), Grant::ReplaceEnded(Uuid::nil()));
    }
}
