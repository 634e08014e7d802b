//! What replication must make true in a tenant (TN4): the desired
//! assignments, and the plan that turns what a platform actually holds into
//! them. Pure: the engine observes the platform, calls [`plan`], and applies
//! the plan with idempotent calls; it never replays a log of events.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::access::{Binding, UserStatus, effective_project_roles};

/// Where a tenant's replication stands (TN5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    /// Changed since the last replication, waiting for a worker.
    Pending,
    /// A worker is converging it now.
    InProgress,
    /// The platform holds exactly the desired assignments.
    Succeeded,
    /// The last attempt failed; the tenant keeps the platform's error.
    Failed,
}

/// What replication does with drift found on a platform (TN4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriftPolicy {
    /// Restore the desired state and record each repair.
    #[default]
    Repair,
    /// Leave the platform as it is and record what differs.
    Report,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(format!("must be one of: {}", [$($text),*].join(", "))),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(TenantStatus { Pending => "pending", InProgress => "in_progress", Succeeded => "succeeded", Failed => "failed" });
text_enum!(DriftPolicy { Repair => "repair", Report => "report" });

/// The longest tenant name: an AWS account name takes 50 characters (a
/// Kubernetes namespace and a Keystone project take 63), and one name fits
/// every platform.
pub const TENANT_NAME_MAX: usize = 50;

/// The name of a project's tenant on a platform: `WORKSPACE-PROJECT-XXXXXXXX`,
/// where the suffix comes from the tenant's own id. Identifiers may contain
/// dashes (`a-b` + `c` and `a` + `b-c` read alike), and a project deleted and
/// made again must not find its predecessor's tenant, so the readable part
/// alone is never enough. The readable part is shortened to fit. The
/// suffix is the id's first eight hex digits, so the id must be random (v4):
/// those of a time-ordered one (v7) are alike for a minute.
pub fn tenant_name(workspace: &str, project: &str, tenant: Uuid) -> String {
    let suffix = format!("-{}", &tenant.simple().to_string()[..8]);
    let readable = format!("{workspace}-{project}");
    // identifiers are ASCII, so byte slicing is on a character boundary
    let keep = readable.len().min(TENANT_NAME_MAX - suffix.len());
    format!("{}{suffix}", readable[..keep].trim_end_matches('-'))
}

/// The longest Canopy waits because a platform asked it to (`Retry-After`):
/// a platform's answer is outside input, and an absurd wait must neither
/// overflow a time computation nor park a tenant for ever (SE5).
pub const MAX_RETRY_AFTER: Duration = Duration::hours(1);

/// The wait a platform asked for, capped at [`MAX_RETRY_AFTER`] (a wait too
/// long for [`Duration`] is the cap too).
pub fn platform_wait(asked: std::time::Duration) -> Duration {
    Duration::try_from(asked).map_or(MAX_RETRY_AFTER, |d| d.clamp(Duration::ZERO, MAX_RETRY_AFTER))
}

/// When to try a tenant again after `attempts` failed attempts: from 5 s,
/// doubling, at most 10 minutes, and never before the platform's own
/// `Retry-After` (itself at most [`MAX_RETRY_AFTER`]).
pub fn retry_delay(attempts: i64, retry_after: Option<Duration>) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 10) as u32;
    let backoff = Duration::seconds((5i64 << doublings).min(600));
    match retry_after.map(|r| r.clamp(Duration::ZERO, MAX_RETRY_AFTER)) {
        Some(r) if r > backoff => r,
        _ => backoff,
    }
}

/// A user holding a platform role in a tenant. `U` names the user: Canopy's
/// id when computing what should be, the platform account name when
/// comparing with what a platform holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Assignment<U = Uuid> {
    pub user: U,
    pub platform_role: String,
}

/// The assignments a tenant of a project must hold at `at`: every user who
/// effectively holds a project role (directly or through a group, in force,
/// active account) gets the platform role that role maps to. Project roles
/// the platform does not map give nothing there.
pub fn desired_assignments(
    bindings: &[Binding],
    group_members: &BTreeMap<Uuid, BTreeSet<Uuid>>,
    users: &[UserStatus],
    role_mapping: &BTreeMap<Uuid, String>,
    at: OffsetDateTime,
) -> BTreeSet<Assignment> {
    effective_project_roles(bindings, group_members, users, at)
        .into_iter()
        .flat_map(|(user, roles)| {
            roles
                .into_iter()
                .filter_map(|role| role_mapping.get(&role))
                .map(move |platform_role| Assignment { user, platform_role: platform_role.clone() })
        })
        .collect()
}

/// The calls that make a tenant hold exactly the desired assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<U = Uuid> {
    pub grant: Vec<Assignment<U>>,
    pub revoke: Vec<Assignment<U>>,
}

impl<U> Default for Plan<U> {
    fn default() -> Self {
        Plan { grant: Vec::new(), revoke: Vec::new() }
    }
}

impl<U> Plan<U> {
    pub fn is_empty(&self) -> bool {
        self.grant.is_empty() && self.revoke.is_empty()
    }
}

/// Compare what a tenant should hold with what it holds. Only assignments of
/// the platform roles Canopy manages (`managed`, the values of the role
/// mapping) are Canopy's: others found on the platform are left alone, while
/// a managed role held by someone who should not hold it is revoked (drift
/// made outside Canopy is repaired).
pub fn plan<U: Ord + Clone>(
    desired: &BTreeSet<Assignment<U>>,
    actual: &BTreeSet<Assignment<U>>,
    managed: &BTreeSet<String>,
) -> Plan<U> {
    let grant = desired.difference(actual).cloned().collect();
    let revoke =
        actual.iter().filter(|a| managed.contains(&a.platform_role) && !desired.contains(a)).cloned().collect();
    Plan { grant, revoke }
}

/// The platform roles Canopy manages in a tenant: those its role mapping
/// names now, and those it applied there under an earlier mapping (so a
/// changed or removed mapping takes the old role away).
pub fn managed_roles<U>(
    role_mapping: &BTreeMap<Uuid, String>,
    applied: &BTreeMap<Assignment<U>, Applied>,
) -> BTreeSet<String> {
    role_mapping.values().cloned().chain(applied.keys().map(|a| a.platform_role.clone())).collect()
}

/// What Canopy manages in a tenant, which a platform that cannot list
/// everything cheaply is asked about when observed (an Open Service Broker
/// lists no bindings; AWS lists assignments per permission set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed<U = Uuid> {
    /// The assignments Canopy wants there, and those it applied there.
    pub assignments: BTreeSet<Assignment<U>>,
    /// The platform roles it manages there ([`managed_roles`]).
    pub roles: BTreeSet<String>,
}

/// What Canopy manages in a tenant that should hold `desired`.
pub fn managed<U: Ord + Clone>(
    desired: &BTreeSet<Assignment<U>>,
    role_mapping: &BTreeMap<Uuid, String>,
    applied: &BTreeMap<Assignment<U>, Applied>,
) -> Managed<U> {
    Managed {
        assignments: desired.iter().chain(applied.keys()).cloned().collect(),
        roles: managed_roles(role_mapping, applied),
    }
}

/// How Canopy's record of what it applied in a tenant follows what the
/// platform was found to hold, before the plan is carried out (TN4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookkeeping<U = Uuid> {
    /// Grants recorded `Pending` that the platform holds: a run ended
    /// between the call and its record. Now confirmed.
    pub confirmed: Vec<Assignment<U>>,
    /// Assignments the platform holds that a binding gives now but Canopy
    /// never applied (granted by hand before, say): adopted as Canopy's, so
    /// they are revoked when the binding ends, under either drift policy.
    pub adopted: Vec<Assignment<U>>,
    /// Assignments Canopy applied that the platform no longer holds and
    /// nobody should hold: their revocation happened (a run ended before
    /// recording it, or a pending grant never reached the platform).
    pub revoked: Vec<Assignment<U>>,
}

/// The [`Bookkeeping`] for a tenant that should hold `desired`, holds
/// `actual`, and where Canopy recorded `applied`.
pub fn bookkeeping<U: Ord + Clone>(
    desired: &BTreeSet<Assignment<U>>,
    actual: &BTreeSet<Assignment<U>>,
    applied: &BTreeMap<Assignment<U>, Applied>,
) -> Bookkeeping<U> {
    let confirmed =
        applied.iter().filter(|(a, state)| **state == Applied::Pending && actual.contains(a)).map(|(a, _)| a.clone());
    let revoked = applied.keys().filter(|a| !actual.contains(a) && !desired.contains(a)).cloned();
    let adopted = desired.intersection(actual).filter(|a| !applied.contains_key(*a)).cloned();
    Bookkeeping { confirmed: confirmed.collect(), adopted: adopted.collect(), revoked: revoked.collect() }
}

/// What Canopy knows of an assignment it applied in a tenant. A grant is
/// recorded `Pending` before the platform is called and `Confirmed` once the
/// platform holds it, so a crash between the two is never mistaken for drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Pending,
    Confirmed,
}

/// Drift is what changed on the platform outside Canopy: an assignment Canopy
/// applied and the platform confirmed that has gone missing, or a managed
/// role held that Canopy never granted. Everything else in a plan is Canopy's
/// own change (a binding added, changed or ended).
pub fn is_drift<U: Ord>(step: Step, a: &Assignment<U>, applied: &BTreeMap<Assignment<U>, Applied>) -> bool {
    match step {
        Step::Grant => applied.get(a) == Some(&Applied::Confirmed),
        Step::Revoke => !applied.contains_key(a),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Grant,
    Revoke,
}

/// Split a plan into Canopy's own changes and the drift made outside it.
/// Under a report-only drift policy the engine applies only the first.
pub fn split_drift<U: Ord + Clone>(plan: Plan<U>, applied: &BTreeMap<Assignment<U>, Applied>) -> (Plan<U>, Plan<U>) {
    let (grant_drift, grant): (Vec<_>, Vec<_>) =
        plan.grant.into_iter().partition(|a| is_drift(Step::Grant, a, applied));
    let (revoke_drift, revoke): (Vec<_>, Vec<_>) =
        plan.revoke.into_iter().partition(|a| is_drift(Step::Revoke, a, applied));
    (Plan { grant, revoke }, Plan { grant: grant_drift, revoke: revoke_drift })
}

/// What a tenant holds after a plan was applied to `actual`.
pub fn apply<U: Ord + Clone>(actual: &BTreeSet<Assignment<U>>, plan: &Plan<U>) -> BTreeSet<Assignment<U>> {
    let mut out = actual.clone();
    for a in &plan.revoke {
        out.remove(a);
    }
    out.extend(plan.grant.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Subject;
    use proptest::prelude::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

    fn a(user: Uuid, role: &str) -> Assignment {
        Assignment { user, platform_role: role.into() }
    }

    #[test]
    fn tn4_bound_users_and_group_members_get_the_mapped_role() {
        let (ann, bob, devs, user_role, reader_role) =
            (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let bindings = vec![
            Binding {
                id: Uuid::new_v4(),
                project_id: Uuid::nil(),
                subject: Subject::user(ann),
                role_id: reader_role,
                expires_at: None,
            },
            Binding {
                id: Uuid::new_v4(),
                project_id: Uuid::nil(),
                subject: Subject::group(devs),
                role_id: user_role,
                expires_at: None,
            },
        ];
        let members = BTreeMap::from([(devs, BTreeSet::from([bob]))]);
        let users = [UserStatus { id: ann, active: true }, UserStatus { id: bob, active: true }];
        // only project_user is mapped on this platform
        let mapping = BTreeMap::from([(user_role, "edit".to_owned())]);
        let desired = desired_assignments(&bindings, &members, &users, &mapping, NOW);
        assert_eq!(desired, BTreeSet::from([a(bob, "edit")]));
    }

    #[test]
    fn tn4_drift_is_repaired_and_foreign_roles_are_left_alone() {
        let (ann, bob, eve) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let desired = BTreeSet::from([a(ann, "edit"), a(bob, "view")]);
        let actual = BTreeSet::from([a(ann, "edit"), a(eve, "edit"), a(eve, "cluster-admin")]);
        let managed = BTreeSet::from(["edit".to_owned(), "view".to_owned()]);
        let p = plan(&desired, &actual, &managed);
        assert_eq!(p.grant, vec![a(bob, "view")]);
        assert_eq!(
            p.revoke,
            vec![a(eve, "edit")],
            "eve's edit was added outside Canopy; her cluster-admin is not Canopy's"
        );
    }

    #[test]
    fn ac7_expired_binding_leaves_the_tenant() {
        let (ann, role) = (Uuid::new_v4(), Uuid::new_v4());
        let bindings = vec![Binding {
            id: Uuid::new_v4(),
            project_id: Uuid::nil(),
            subject: Subject::user(ann),
            role_id: role,
            expires_at: Some(datetime!(2026-11-24 0:00 UTC)),
        }];
        let users = [UserStatus { id: ann, active: true }];
        let mapping = BTreeMap::from([(role, "edit".to_owned())]);
        let managed = BTreeSet::from(["edit".to_owned()]);
        let before = desired_assignments(&bindings, &BTreeMap::new(), &users, &mapping, NOW);
        let after = desired_assignments(&bindings, &BTreeMap::new(), &users, &mapping, datetime!(2026-11-25 0:00 UTC));
        assert_eq!(plan(&after, &before, &managed).revoke, vec![a(ann, "edit")]);
    }

    #[test]
    fn tn3_tenant_names_are_unique_and_fit_every_platform() {
        let id = Uuid::from_u128(0xabcdef12_0000_0000_0000_000000000000);
        assert_eq!(tenant_name("team-a", "web", id), "team-a-web-abcdef12");
        // dashes in identifiers cannot make two tenants' names meet
        assert_ne!(tenant_name("a-b", "c", Uuid::new_v4()), tenant_name("a", "b-c", Uuid::new_v4()));
        let long = tenant_name(&"w".repeat(32), &"p".repeat(32), id);
        assert!(long.len() <= TENANT_NAME_MAX && long.ends_with("-abcdef12"), "{long}");
    }

    #[test]
    fn tn5_retries_back_off_and_honour_retry_after() {
        assert_eq!(retry_delay(1, None), Duration::seconds(5));
        assert_eq!(retry_delay(2, None), Duration::seconds(10));
        assert_eq!(retry_delay(50, None), Duration::minutes(10));
        assert_eq!(retry_delay(1, Some(Duration::seconds(30))), Duration::seconds(30));
        assert_eq!(retry_delay(3, Some(Duration::seconds(1))), Duration::seconds(20));
    }

    #[test]
    fn se5_a_platforms_wait_is_capped() {
        use std::time::Duration as Std;
        assert_eq!(platform_wait(Std::from_secs(30)), Duration::seconds(30));
        assert_eq!(platform_wait(Std::from_secs(i64::MAX as u64)), MAX_RETRY_AFTER);
        assert_eq!(platform_wait(Std::MAX), MAX_RETRY_AFTER);
        assert_eq!(retry_delay(1, Some(Duration::MAX)), MAX_RETRY_AFTER);
        assert_eq!(retry_delay(1, Some(Duration::MIN)), Duration::seconds(5));
    }

    #[test]
    fn tn4_drift_is_told_from_canopys_own_changes() {
        let (ann, bob, eve, dan) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let applied = BTreeMap::from([
            (a(ann, "edit"), Applied::Confirmed),
            (a(bob, "edit"), Applied::Pending),
            (a(dan, "edit"), Applied::Confirmed),
        ]);
        let p = Plan {
            // ann's confirmed grant went missing (drift); bob's grant never reached the platform (a crash)
            grant: vec![a(ann, "edit"), a(bob, "edit")],
            // eve's role was added outside Canopy (drift); dan's binding ended (Canopy's change)
            revoke: vec![a(eve, "edit"), a(dan, "edit")],
        };
        let (changes, drift) = split_drift(p, &applied);
        assert_eq!(changes, Plan { grant: vec![a(bob, "edit")], revoke: vec![a(dan, "edit")] });
        assert_eq!(drift, Plan { grant: vec![a(ann, "edit")], revoke: vec![a(eve, "edit")] });
    }

    #[test]
    fn tn4_canopy_manages_the_mapped_roles_and_those_it_applied_under_an_earlier_mapping() {
        let (ann, bob, role) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        // the mapping moved the project role from "edit" to "admin"
        let mapping = BTreeMap::from([(role, "admin".to_owned())]);
        let applied = BTreeMap::from([(a(ann, "edit"), Applied::Confirmed)]);
        let roles = BTreeSet::from(["admin".to_owned(), "edit".to_owned()]);
        assert_eq!(managed_roles(&mapping, &applied), roles);
        let desired = BTreeSet::from([a(ann, "admin"), a(bob, "admin")]);
        let scope = managed(&desired, &mapping, &applied);
        assert_eq!(scope.roles, roles);
        assert_eq!(scope.assignments, BTreeSet::from([a(ann, "admin"), a(bob, "admin"), a(ann, "edit")]));
        // so the old role is taken away
        let actual = BTreeSet::from([a(ann, "edit")]);
        assert_eq!(plan(&desired, &actual, &scope.roles).revoke, vec![a(ann, "edit")]);
    }

    #[test]
    fn tn4_what_a_binding_gives_and_the_platform_holds_already_is_adopted() {
        let (ann, bob, eve) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let desired = BTreeSet::from([a(ann, "edit"), a(bob, "edit")]);
        // ann's was granted by hand before her binding; eve's by hand without one
        let actual = BTreeSet::from([a(ann, "edit"), a(eve, "edit")]);
        let b = bookkeeping(&desired, &actual, &BTreeMap::new());
        assert_eq!(b, Bookkeeping { confirmed: vec![], adopted: vec![a(ann, "edit")], revoked: vec![] });
        // adopted, it is Canopy's: revoked as Canopy's own change once the binding ends
        let applied = BTreeMap::from([(a(ann, "edit"), Applied::Confirmed)]);
        let (changes, _) = split_drift(plan(&BTreeSet::new(), &actual, &BTreeSet::from(["edit".into()])), &applied);
        assert_eq!(changes.revoke, vec![a(ann, "edit")]);
    }

    #[test]
    fn tn4_a_crash_between_call_and_record_is_settled_from_what_the_platform_holds() {
        let (ann, bob, carl, dan) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let applied = BTreeMap::from([
            // granted, not recorded as confirmed
            (a(ann, "edit"), Applied::Pending),
            // never reached the platform, still wanted: granted again by the plan
            (a(bob, "edit"), Applied::Pending),
            // revoked, not recorded, no longer wanted
            (a(carl, "edit"), Applied::Confirmed),
            // confirmed and held
            (a(dan, "edit"), Applied::Confirmed),
        ]);
        let desired = BTreeSet::from([a(ann, "edit"), a(bob, "edit"), a(dan, "edit")]);
        let actual = BTreeSet::from([a(ann, "edit"), a(dan, "edit")]);
        let b = bookkeeping(&desired, &actual, &applied);
        assert_eq!(b, Bookkeeping { confirmed: vec![a(ann, "edit")], adopted: vec![], revoked: vec![a(carl, "edit")] });
    }

    fn assignments(users: usize) -> impl Strategy<Value = BTreeSet<Assignment>> {
        let ids: Vec<Uuid> = (0..users).map(|i| Uuid::from_u128(i as u128 + 1)).collect();
        prop::collection::btree_set(
            (prop::sample::select(ids), prop::sample::select(vec!["view", "edit", "admin", "foreign"]))
                .prop_map(|(user, role)| Assignment { user, platform_role: role.to_owned() }),
            0..12,
        )
    }

    proptest! {
        /// Applying the plan reaches the desired state on every managed role,
        /// keeps every foreign assignment, and a second plan is empty.
        #[test]
        fn tn4_plan_converges_and_is_idempotent(desired in assignments(4), actual in assignments(4)) {
            let managed: BTreeSet<String> = ["view", "edit", "admin"].map(String::from).into();
            let desired: BTreeSet<Assignment> = desired.into_iter().filter(|a| managed.contains(&a.platform_role)).collect();
            let after = apply(&actual, &plan(&desired, &actual, &managed));
            let managed_after: BTreeSet<Assignment> = after.iter().filter(|a| managed.contains(&a.platform_role)).cloned().collect();
            prop_assert_eq!(&managed_after, &desired);
            let foreign_before: BTreeSet<&Assignment> = actual.iter().filter(|a| !managed.contains(&a.platform_role)).collect();
            let foreign_after: BTreeSet<&Assignment> = after.iter().filter(|a| !managed.contains(&a.platform_role)).collect();
            prop_assert_eq!(foreign_before, foreign_after);
            prop_assert!(plan(&desired, &after, &managed).is_empty());
        }

        /// No call is planned that is not needed: nothing granted that is held,
        /// nothing revoked that should be held.
        #[test]
        fn tn4_plan_makes_no_needless_calls(desired in assignments(4), actual in assignments(4)) {
            let managed: BTreeSet<String> = ["view", "edit", "admin", "foreign"].map(String::from).into();
            let p = plan(&desired, &actual, &managed);
            prop_assert!(p.grant.iter().all(|a| !actual.contains(a)));
            prop_assert!(p.revoke.iter().all(|a| !desired.contains(a)));
        }
    }
}
