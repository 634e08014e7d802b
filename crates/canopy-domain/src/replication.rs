//! What replication must make true in a tenant (TN4): the desired
//! assignments, and the plan that turns what a platform actually holds into
//! them. Pure: the engine observes the platform, calls [`plan`], and applies
//! the plan with idempotent calls; it never replays a log of events.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::{Binding, UserStatus, effective_project_roles};

/// A user holding a platform role in a tenant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Assignment {
    pub user: Uuid,
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub grant: Vec<Assignment>,
    pub revoke: Vec<Assignment>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.grant.is_empty() && self.revoke.is_empty()
    }
}

/// Compare what a tenant should hold with what it holds. Only assignments of
/// the platform roles Canopy manages (`managed`, the values of the role
/// mapping) are Canopy's: others found on the platform are left alone, while
/// a managed role held by someone who should not hold it is revoked (drift
/// made outside Canopy is repaired).
pub fn plan(desired: &BTreeSet<Assignment>, actual: &BTreeSet<Assignment>, managed: &BTreeSet<String>) -> Plan {
    let grant = desired.difference(actual).cloned().collect();
    let revoke =
        actual.iter().filter(|a| managed.contains(&a.platform_role) && !desired.contains(a)).cloned().collect();
    Plan { grant, revoke }
}

/// What a tenant holds after a plan was applied to `actual`.
pub fn apply(actual: &BTreeSet<Assignment>, plan: &Plan) -> BTreeSet<Assignment> {
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
