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

/// Who is a member of a workspace (WS3, WS4): users in their own right,
/// and the member groups with their users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    pub users: BTreeSet<Uuid>,
    pub groups: BTreeMap<Uuid, BTreeSet<Uuid>>,
}

impl Members {
    /// Whether `user` is a member, directly or through a group.
    pub fn has_user(&self, user: Uuid) -> bool {
        self.users.contains(&user) || self.groups.values().any(|m| m.contains(&user))
    }
}

/// A way into a workspace that ends (WS6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure<'a> {
    /// A user is removed from the workspace's members.
    User(Uuid),
    /// A group is removed from the workspace's members; `users` are its users.
    Group { group: Uuid, users: &'a [Uuid] },
    /// Users left a group that is a member of the workspace.
    FromGroup(&'a [Uuid]),
}

/// Why a departure ends a binding (WS6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cascade {
    /// Its holder, a user or a group, was removed from the workspace.
    HolderRemoved,
    /// Its holder, a user, is no longer a member, neither directly nor
    /// through a group.
    NoLongerMember,
}

/// The bindings of a workspace that `departure` ends, and why, in the order
/// of `bindings` (WS6: access leaves with the membership that gave it).
/// `members` is who is a member after the departure.
///
/// Every binding of a removed member ends, a user's even where a group
/// keeps them a member: removing a person states the intent to take their
/// access away. A group's departure, or users leaving a group, ends the
/// direct bindings of those of its users who are no longer members at all;
/// a user who is still a member, directly or through another group, stays
/// bound. Nobody else's binding ends, and a group's bindings stay while the
/// group is a member (they reach its members as they are, AC3).
pub fn departure_ends(departure: Departure<'_>, bindings: &[Binding], members: &Members) -> Vec<(Uuid, Cascade)> {
    let (removed, users): (Option<Subject>, &[Uuid]) = match departure {
        Departure::User(user) => (Some(Subject::user(user)), &[]),
        Departure::Group { group, users } => (Some(Subject::group(group)), users),
        Departure::FromGroup(users) => (None, users),
    };
    let left: BTreeSet<Uuid> = users.iter().copied().filter(|u| !members.has_user(*u)).collect();
    bindings
        .iter()
        .filter_map(|b| {
            if Some(b.subject) == removed {
                Some((b.id, Cascade::HolderRemoved))
            } else if b.subject.kind == SubjectKind::User && left.contains(&b.subject.id) {
                Some((b.id, Cascade::NoLongerMember))
            } else {
                None
            }
        })
        .collect()
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
    fn ws6_removing_a_person_ends_their_bindings_even_where_a_group_keeps_them_a_member() {
        let (ann, bob, devs, role) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (a, b, g) = (
            binding(Subject::user(ann), role, None),
            binding(Subject::user(bob), role, None),
            binding(Subject::group(devs), role, None),
        );
        // ann stays a member through devs, bob in his own right
        let members = Members { users: BTreeSet::from([bob]), groups: BTreeMap::from([(devs, BTreeSet::from([ann]))]) };
        let all = [a.clone(), b, g];
        assert_eq!(departure_ends(Departure::User(ann), &all, &members), vec![(a.id, Cascade::HolderRemoved)]);
    }

    #[test]
    fn ws6_a_group_leaving_takes_its_bindings_and_those_of_users_it_alone_made_members() {
        let (carl, dana, erin, frank) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (devs, ops, role) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (c, d, e, f) = (
            binding(Subject::user(carl), role, None),
            binding(Subject::user(dana), role, None),
            binding(Subject::user(erin), role, None),
            binding(Subject::user(frank), role, None),
        );
        let (gd, go) = (binding(Subject::group(devs), role, None), binding(Subject::group(ops), role, None));
        // after devs left: dana is a member in her own right, erin through ops;
        // frank was never in devs
        let members =
            Members { users: BTreeSet::from([dana]), groups: BTreeMap::from([(ops, BTreeSet::from([erin]))]) };
        let devs_users = [carl, dana, erin];
        let all = [gd.clone(), c.clone(), d, e, f, go];
        assert_eq!(
            departure_ends(Departure::Group { group: devs, users: &devs_users }, &all, &members),
            vec![(gd.id, Cascade::HolderRemoved), (c.id, Cascade::NoLongerMember)]
        );
    }

    #[test]
    fn ws6_a_user_bound_directly_stays_bound_while_still_a_member_through_a_group() {
        let (carl, ga, gb, role) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (c, g) = (binding(Subject::user(carl), role, None), binding(Subject::group(gb), role, None));
        let all = [c.clone(), g];
        // carl left gb but is still in ga, a member group
        let through_ga = Members { users: BTreeSet::new(), groups: BTreeMap::from([(ga, BTreeSet::from([carl]))]) };
        assert!(departure_ends(Departure::FromGroup(&[carl]), &all, &through_ga).is_empty());
        let members_of_gb = Members { users: BTreeSet::new(), groups: BTreeMap::from([(gb, BTreeSet::new())]) };
        // no way in is left: his direct binding ends; gb's own binding stays with gb
        assert_eq!(
            departure_ends(Departure::FromGroup(&[carl]), &all, &members_of_gb),
            vec![(c.id, Cascade::NoLongerMember)]
        );
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
