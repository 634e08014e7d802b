//! The four-eye principle (FE1–FE4): when a change to a project binding waits
//! for approval, who may approve it, and when an approval applies it.
//!
//! A change to a binding (add, change, remove) becomes a pending *request*
//! when four-eye is on for its workspace. It applies once `approvals` people
//! other than the requester who manage the workspace have approved it, or as
//! soon as one admin has (FE3). Nobody approves their own request and one
//! person counts once (FE4); a request is decided once, so a second approval
//! that arrives after the deciding one is refused, never applied again.
//!
//! When the request is applied the world may have moved on: the binding to
//! change may be gone, the proposed expiration may have passed. Then the
//! request is void ([`void_reason`]) rather than applied.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::{Binding, in_force_at};
use crate::names::InvalidValue;

/// The most approvals a setting may ask for.
pub const MAX_APPROVALS: u32 = 10;

/// How long a request waits for its decision before it lapses (void), so
/// that nobody approves a months-old change whose reasons are gone.
pub const REQUEST_LIFETIME: time::Duration = time::Duration::days(30);

/// Whether a request made at `requested_at` has lapsed at `now`.
pub fn lapsed(requested_at: OffsetDateTime, now: OffsetDateTime) -> bool {
    now - requested_at >= REQUEST_LIFETIME
}

/// A four-eye setting: on or off, and how many approvals a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FourEye {
    pub enabled: bool,
    pub approvals: u32,
}

impl FourEye {
    /// The installation's setting before an admin changes it.
    pub const OFF: FourEye = FourEye { enabled: false, approvals: 1 };

    pub fn new(enabled: bool, approvals: u32) -> Result<Self, InvalidValue> {
        if !(1..=MAX_APPROVALS).contains(&approvals) {
            return Err(InvalidValue(format!("must be between 1 and {MAX_APPROVALS}")));
        }
        Ok(FourEye { enabled, approvals })
    }

    /// A workspace's own setting, where it has one, wins over the installation's (FE1).
    pub fn effective(installation: FourEye, workspace: Option<FourEye>) -> FourEye {
        workspace.unwrap_or(installation)
    }
}

/// What a request would do to a project's bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Bind a subject with a role.
    Add,
    /// Change a binding's role or expiration.
    Change,
    /// Remove a binding.
    Remove,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    Pending,
    /// Approved and applied.
    Approved,
    /// Declined by an approver, or withdrawn by the requester.
    Declined,
    /// Could no longer be applied when it was approved (see [`void_reason`]).
    Void,
}

macro_rules! str_enum {
    ($t:ident { $($v:ident => $s:literal),* }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl FromStr for $t {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok(Self::$v),)*
                    _ => Err(InvalidValue(format!("must be one of {}", [$($s),*].join(", ")))),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(RequestKind { Add => "add", Change => "change", Remove => "remove" });
str_enum!(RequestState { Pending => "pending", Approved => "approved", Declined => "declined", Void => "void" });

/// A request as the approval rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The person who asked (for a request filed with an API key, its creator).
    pub requester: Uuid,
    /// The API key it was filed with, if any: the key may withdraw it too.
    pub requester_key: Option<Uuid>,
    pub state: RequestState,
    /// Approvals it needs, fixed when it was made.
    pub required: u32,
    /// The distinct people whose approvals count so far.
    pub approvals: BTreeSet<Uuid>,
    /// Every person whose access the request changes: its user, or each
    /// member of its group ([`crate::access::people_reached`]).
    pub beneficiaries: BTreeSet<Uuid>,
}

/// Someone who acts on a request, with what they may do in its workspace now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approver {
    pub id: Uuid,
    /// Approves alone (FE3): an admin, in person.
    pub is_admin: bool,
    /// Manages the request's workspace (manager or owner, or an admin), in
    /// person. `authz::approver` derives both from the authorisation rules.
    pub is_manager: bool,
}

/// Why an approval or a decline is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("nobody approves their own request")]
    OwnRequest,
    #[error("nobody approves a change to their own access")]
    OwnAccess,
    #[error("you approved this request already; one person counts once")]
    AlreadyApproved,
    #[error("this request is {0} already")]
    Decided(RequestState),
    #[error("only the workspace's managers and admins decide on its requests")]
    NotAnApprover,
    #[error("this request waited 30 days without a decision and lapsed; ask again")]
    Lapsed,
}

/// What an accepted approval does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The request has its approvals (or an admin's): apply it now.
    Apply,
    /// Counted; the request waits for `required - approvals` more.
    Wait { approvals: u32, required: u32 },
}

/// Decide on `approver`'s approval of `request` (FE2–FE4).
pub fn approve(request: &Request, approver: Approver) -> Result<Verdict, Refusal> {
    if request.state != RequestState::Pending {
        return Err(Refusal::Decided(request.state));
    }
    if approver.id == request.requester {
        return Err(Refusal::OwnRequest);
    }
    if request.beneficiaries.contains(&approver.id) {
        return Err(Refusal::OwnAccess);
    }
    if !approver.is_admin && !approver.is_manager {
        return Err(Refusal::NotAnApprover);
    }
    if request.approvals.contains(&approver.id) {
        return Err(Refusal::AlreadyApproved);
    }
    if approver.is_admin {
        return Ok(Verdict::Apply);
    }
    // the requester can never be among the approvals; nor can a beneficiary,
    // but one may have joined the group since approving: that approval no
    // longer counts
    let counted =
        request.approvals.iter().filter(|a| **a != request.requester && !request.beneficiaries.contains(a)).count();
    let approvals = u32::try_from(counted).unwrap_or(u32::MAX).saturating_add(1);
    if approvals >= request.required {
        Ok(Verdict::Apply)
    } else {
        Ok(Verdict::Wait { approvals, required: request.required })
    }
}

/// Whether `who` may decline `request`: an approver, or the requester
/// withdrawing it.
pub fn decline(request: &Request, who: Approver) -> Result<(), Refusal> {
    if request.state != RequestState::Pending {
        return Err(Refusal::Decided(request.state));
    }
    if !withdraws(request, who.id) && !who.is_admin && !who.is_manager {
        return Err(Refusal::NotAnApprover);
    }
    Ok(())
}

/// Whether `who` declining `request` withdraws it: its requester, or the
/// API key that filed it.
pub fn withdraws(request: &Request, who: Uuid) -> bool {
    who == request.requester || request.requester_key == Some(who)
}

/// Whether an emergency grant, which applies at once past four-eye (AD3),
/// goes for review to the workspace's managers and the admins: when four-eye
/// is on for its workspace and its granter could not have approved the
/// change alone (`granter_approves_alone`, an admin's say, FE3).
pub fn emergency_reviewed(setting: FourEye, granter_approves_alone: bool) -> bool {
    setting.enabled && !granter_approves_alone
}

/// Whether a request can only be approved by an admin: fewer than `required`
/// people other than the requester manage its workspace (FE3). Such a request
/// says so and waits; it is never approved silently.
pub fn needs_admin(required: u32, managers_other_than_requester: usize) -> bool {
    usize::try_from(required).unwrap_or(usize::MAX) > managers_other_than_requester
}

/// Why an approved request cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VoidReason {
    #[error("the binding it changes was removed meanwhile")]
    BindingGone,
    #[error("its expiration passed while it waited for approval")]
    ExpiryPassed,
    #[error("the subject holds that role on the project already")]
    AlreadyHeld,
    #[error("the subject is no longer a member of the workspace, or its account is deactivated")]
    SubjectGone,
    #[error("the binding was changed meanwhile; request the change again")]
    ChangedMeanwhile,
    #[error(
        "the requester can no longer make this change (deactivated, removed, no longer a manager, or their API key deleted)"
    )]
    RequesterGone,
    #[error("it waited 30 days without a decision")]
    Lapsed,
}

/// What applying a request at `now` would meet.
#[derive(Debug, Clone, Copy)]
pub struct ApplyContext<'a> {
    pub kind: RequestKind,
    /// The expiration the request sets (add, change).
    pub expires_at: Option<OffsetDateTime>,
    /// For a change: the role and expiration the binding had when it was asked for.
    pub from: Option<(Uuid, Option<OffsetDateTime>)>,
    /// For change and remove: the binding now, if it still exists. For add:
    /// a binding of the same subject and role, if one exists.
    pub binding: Option<&'a Binding>,
    /// For a change to another role: the subject's binding with that role, if any.
    pub other: Option<&'a Binding>,
    /// Whether the subject may still hold project roles in the workspace.
    pub subject_eligible: bool,
    /// Whether the person or API key that asked may still make this change
    /// (active, still managing the workspace, the key not deleted): a
    /// request does not outlive its requester's right to ask.
    pub requester_may_ask: bool,
}

/// Whether applying a request at `now` ends its binding rather than changing
/// it: a change whose expiration passed while it waited was asked to take
/// access away by then, and must not lapse into leaving it (issue 11,
/// finding 16). It applies as the binding with its role kept and that
/// expiration, which ends it.
pub fn ends_access(kind: RequestKind, expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    kind == RequestKind::Change && !in_force_at(expires_at, now)
}

/// Why the request cannot be applied at `now`, or `None` when it can.
///
/// A removal applies as long as the binding exists, even if it expired
/// meanwhile. A change applies only to the binding as the approvers saw it;
/// one whose expiration passed ends the binding ([`ends_access`]).
/// An add or a change never creates access that is already over, nor
/// duplicates a binding in force.
pub fn void_reason(ctx: ApplyContext<'_>, now: OffsetDateTime) -> Option<VoidReason> {
    if !ctx.requester_may_ask {
        return Some(VoidReason::RequesterGone);
    }
    match ctx.kind {
        RequestKind::Remove => ctx.binding.is_none().then_some(VoidReason::BindingGone),
        RequestKind::Change => {
            let Some(b) = ctx.binding else { return Some(VoidReason::BindingGone) };
            if ctx.from.is_some_and(|from| from != (b.role_id, b.expires_at)) {
                Some(VoidReason::ChangedMeanwhile)
            } else if ends_access(ctx.kind, ctx.expires_at, now) {
                // a reduction never lapses into more access: it ends the binding
                None
            } else if !ctx.subject_eligible {
                Some(VoidReason::SubjectGone)
            } else if ctx.other.is_some_and(|o| o.id != b.id && o.in_force_at(now)) {
                Some(VoidReason::AlreadyHeld)
            } else {
                None
            }
        }
        RequestKind::Add => {
            if !in_force_at(ctx.expires_at, now) {
                Some(VoidReason::ExpiryPassed)
            } else if !ctx.subject_eligible {
                Some(VoidReason::SubjectGone)
            } else if ctx.binding.is_some_and(|b| b.in_force_at(now)) {
                Some(VoidReason::AlreadyHeld)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Subject;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use time::macros::datetime;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn pending(requester: Uuid, required: u32, approvals: &[Uuid]) -> Request {
        Request {
            requester,
            requester_key: None,
            state: RequestState::Pending,
            required,
            approvals: approvals.iter().copied().collect(),
            beneficiaries: BTreeSet::new(),
        }
    }

    fn manager(n: u128) -> Approver {
        Approver { id: id(n), is_admin: false, is_manager: true }
    }

    #[test]
    fn fe1_workspace_setting_overrides_the_installation() {
        let on = FourEye::new(true, 2).ok();
        assert_eq!(FourEye::effective(FourEye::OFF, on), FourEye { enabled: true, approvals: 2 });
        assert_eq!(FourEye::effective(FourEye::OFF, None), FourEye::OFF);
        assert!(FourEye::new(true, 0).is_err());
        assert!(FourEye::new(true, MAX_APPROVALS + 1).is_err());
    }

    #[test]
    fn fe4_nobody_approves_their_own_request_and_one_person_counts_once() {
        let r = pending(id(1), 2, &[]);
        assert_eq!(approve(&r, manager(1)), Err(Refusal::OwnRequest));
        let admin_requester = Approver { id: id(1), is_admin: true, is_manager: true };
        assert_eq!(approve(&r, admin_requester), Err(Refusal::OwnRequest));
        assert_eq!(approve(&r, manager(2)), Ok(Verdict::Wait { approvals: 1, required: 2 }));
        let r = pending(id(1), 2, &[id(2)]);
        assert_eq!(approve(&r, manager(2)), Err(Refusal::AlreadyApproved));
        assert_eq!(approve(&r, manager(3)), Ok(Verdict::Apply));
        // nor a change to their own access, admins included
        let r = Request { beneficiaries: BTreeSet::from([id(3)]), ..pending(id(1), 1, &[]) };
        assert_eq!(approve(&r, manager(3)), Err(Refusal::OwnAccess));
        assert_eq!(approve(&r, Approver { id: id(3), is_admin: true, is_manager: false }), Err(Refusal::OwnAccess));
    }

    #[test]
    fn se3_nobody_approves_a_change_to_their_own_access_through_a_group() {
        use crate::access::{Subject, people_reached};
        let (ops, devs, empty) = (id(50), id(51), id(52));
        let members = BTreeMap::from([(ops, BTreeSet::from([id(2), id(3)])), (devs, BTreeSet::from([id(4)]))]);
        let for_subject = |s: Subject| Request { beneficiaries: people_reached(s, &members), ..pending(id(1), 1, &[]) };
        // a user's request: only that user benefits
        let r = for_subject(Subject::user(id(2)));
        assert_eq!(approve(&r, manager(2)), Err(Refusal::OwnAccess));
        assert_eq!(approve(&r, manager(3)), Ok(Verdict::Apply));
        // a group's request: every member benefits, admins included; others may approve
        let r = for_subject(Subject::group(ops));
        assert_eq!(approve(&r, manager(2)), Err(Refusal::OwnAccess));
        assert_eq!(approve(&r, manager(3)), Err(Refusal::OwnAccess));
        assert_eq!(approve(&r, Approver { id: id(3), is_admin: true, is_manager: false }), Err(Refusal::OwnAccess));
        assert_eq!(approve(&r, manager(4)), Ok(Verdict::Apply));
        // an approval given before its giver joined the group no longer counts
        let r = Request { required: 2, approvals: BTreeSet::from([id(3)]), ..for_subject(Subject::group(ops)) };
        assert_eq!(approve(&r, manager(4)), Ok(Verdict::Wait { approvals: 1, required: 2 }));
        // a group unknown to the expansion (or empty) reaches nobody
        assert!(for_subject(Subject::group(empty)).beneficiaries.is_empty());
    }

    #[test]
    fn fe2_requests_lapse_after_thirty_days() {
        let at = datetime!(2026-11-23 0:00 UTC);
        assert!(!lapsed(at, at + REQUEST_LIFETIME - time::Duration::seconds(1)));
        assert!(lapsed(at, at + REQUEST_LIFETIME));
    }

    #[test]
    fn ad3_an_emergency_grant_past_four_eye_is_reviewed_unless_an_admin_made_it() {
        let on = FourEye { enabled: true, approvals: 1 };
        assert!(emergency_reviewed(on, false), "a manager bypassed four-eye: reviewed");
        assert!(!emergency_reviewed(on, true), "an admin's say applies alone");
        assert!(!emergency_reviewed(FourEye::OFF, false), "nothing bypassed");
        assert!(!emergency_reviewed(FourEye::OFF, true));
    }

    #[test]
    fn fe3_an_admin_approves_alone() {
        let r = pending(id(1), 3, &[]);
        let admin = Approver { id: id(9), is_admin: true, is_manager: false };
        assert_eq!(approve(&r, admin), Ok(Verdict::Apply));
        assert!(needs_admin(3, 2));
        assert!(!needs_admin(2, 2));
    }

    #[test]
    fn fe2_decided_requests_take_no_more_decisions() {
        for state in [RequestState::Approved, RequestState::Declined, RequestState::Void] {
            let r = Request { state, ..pending(id(1), 1, &[]) };
            assert_eq!(approve(&r, manager(2)), Err(Refusal::Decided(state)));
            assert_eq!(decline(&r, manager(2)), Err(Refusal::Decided(state)));
        }
        let r = pending(id(1), 1, &[]);
        let member = Approver { id: id(5), is_admin: false, is_manager: false };
        assert_eq!(approve(&r, member), Err(Refusal::NotAnApprover));
        assert_eq!(decline(&r, member), Err(Refusal::NotAnApprover));
        // the requester may withdraw their own request, and so may the key that filed it
        assert_eq!(decline(&r, Approver { id: id(1), is_admin: false, is_manager: false }), Ok(()));
        let by_key = Request { requester_key: Some(id(77)), ..r.clone() };
        assert_eq!(decline(&by_key, Approver { id: id(77), is_admin: false, is_manager: false }), Ok(()));
        assert!(withdraws(&by_key, id(77)) && withdraws(&by_key, id(1)) && !withdraws(&by_key, id(78)));
    }

    fn ctx<'a>(
        kind: RequestKind,
        expires_at: Option<OffsetDateTime>,
        binding: Option<&'a Binding>,
    ) -> ApplyContext<'a> {
        ApplyContext {
            kind,
            expires_at,
            from: None,
            binding,
            other: None,
            subject_eligible: true,
            requester_may_ask: true,
        }
    }

    #[test]
    fn fe1_requests_void_rather_than_apply_a_world_that_moved_on() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let b =
            Binding { id: id(1), project_id: id(2), subject: Subject::user(id(3)), role_id: id(4), expires_at: None };
        let void = |c| void_reason(c, now);
        assert_eq!(void(ctx(RequestKind::Remove, None, None)), Some(VoidReason::BindingGone));
        assert_eq!(void(ApplyContext { subject_eligible: false, ..ctx(RequestKind::Remove, None, Some(&b)) }), None);
        // a change whose expiration passed ends the binding rather than lapsing (finding 16)
        assert_eq!(void(ctx(RequestKind::Change, Some(now), Some(&b))), None);
        assert!(ends_access(RequestKind::Change, Some(now), now));
        assert!(!ends_access(RequestKind::Change, Some(now + time::Duration::seconds(1)), now));
        assert!(!ends_access(RequestKind::Add, Some(now), now));
        assert_eq!(void(ctx(RequestKind::Add, Some(now), None)), Some(VoidReason::ExpiryPassed));
        assert_eq!(void(ctx(RequestKind::Add, None, Some(&b))), Some(VoidReason::AlreadyHeld));
        let gone = ApplyContext { subject_eligible: false, ..ctx(RequestKind::Add, None, None) };
        assert_eq!(void(gone), Some(VoidReason::SubjectGone));
        let expired = Binding { expires_at: Some(now), ..b.clone() };
        assert_eq!(void(ctx(RequestKind::Add, None, Some(&expired))), None);
        // a change applies to the binding as the approvers saw it
        let seen = ApplyContext { from: Some((id(4), None)), ..ctx(RequestKind::Change, None, Some(&b)) };
        assert_eq!(void(seen), None);
        let moved = ApplyContext { from: Some((id(5), None)), ..seen };
        assert_eq!(void(moved), Some(VoidReason::ChangedMeanwhile));
        let other = Binding { id: id(9), role_id: id(6), ..b.clone() };
        assert_eq!(void(ApplyContext { other: Some(&other), ..seen }), Some(VoidReason::AlreadyHeld));
        // a request does not outlive its requester's right to ask
        let revoked = ApplyContext { requester_may_ask: false, ..ctx(RequestKind::Remove, None, Some(&b)) };
        assert_eq!(void(revoked), Some(VoidReason::RequesterGone));
    }

    // ---------------------------------------------------------------- model

    /// One step of a simulated workspace: people request, approve and
    /// decline changes, managers remove bindings directly, people leave and
    /// join the workspace, time passes.
    #[derive(Debug, Clone)]
    enum Step {
        RequestAdd { by: u8, subject: u8, role: u8, lasts: Option<u16> },
        RequestChange { by: u8, binding: u8, role: u8, lasts: Option<u16> },
        RequestRemove { by: u8, binding: u8 },
        Approve { by: u8, request: u8 },
        Decline { by: u8, request: u8 },
        RemoveDirectly { binding: u8 },
        Leave { subject: u8 },
        Join { subject: u8 },
        Advance { minutes: u16 },
    }

    fn step() -> impl Strategy<Value = Step> {
        let lasts = proptest::option::of(1u16..600);
        prop_oneof![
            (0u8..6, 1u8..6, 0u8..2, lasts.clone()).prop_map(|(by, subject, role, lasts)| Step::RequestAdd {
                by,
                subject,
                role,
                lasts
            }),
            (0u8..6, any::<u8>(), 0u8..2, lasts).prop_map(|(by, binding, role, lasts)| Step::RequestChange {
                by,
                binding,
                role,
                lasts
            }),
            (0u8..6, any::<u8>()).prop_map(|(by, binding)| Step::RequestRemove { by, binding }),
            (0u8..6, any::<u8>()).prop_map(|(by, request)| Step::Approve { by, request }),
            (0u8..6, any::<u8>()).prop_map(|(by, request)| Step::Approve { by, request }),
            (0u8..6, any::<u8>()).prop_map(|(by, request)| Step::Decline { by, request }),
            any::<u8>().prop_map(|binding| Step::RemoveDirectly { binding }),
            (1u8..6).prop_map(|subject| Step::Leave { subject }),
            (1u8..6).prop_map(|subject| Step::Join { subject }),
            (1u16..300).prop_map(|minutes| Step::Advance { minutes }),
        ]
    }

    struct ModelRequest {
        kind: RequestKind,
        rule: Request,
        subject: Subject,
        role: Uuid,
        binding: Option<Uuid>,
        from: Option<(Uuid, Option<OffsetDateTime>)>,
        expires_at: Option<OffsetDateTime>,
        /// Everyone whose approval was accepted, in order (duplicates kept).
        accepted: Vec<Approver>,
        applied: u32,
    }

    /// People 0..6: 0 is an admin, 1..4 manage the workspace, 4 and 5 are
    /// members; 1..6 may hold project roles.
    fn person(n: u8) -> Approver {
        Approver { id: id(100 + u128::from(n)), is_admin: n == 0, is_manager: (1..4).contains(&n) }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Over any interleaving of requests, approvals, declines, direct
        /// removals, people leaving and time passing: no request applies
        /// twice or without an admin or `required` distinct approvers other
        /// than the requester and the beneficiary; what an approval applies
        /// is in force when applied, held by a member, never a second
        /// binding of the same role, never a removed binding brought back,
        /// and never a change to a binding that moved since it was asked for.
        #[test]
        fn fe4_interleavings_of_approval_removal_and_expiry_keep_access_sound(
            required in 1u32..4,
            steps in proptest::collection::vec(step(), 1..80),
        ) {
            let mut now = datetime!(2026-11-23 0:00 UTC);
            let mut bindings: BTreeMap<Uuid, Binding> = BTreeMap::new();
            let mut removed: BTreeSet<Uuid> = BTreeSet::new();
            let mut members: BTreeSet<Uuid> = (1..6).map(|n| person(n).id).collect();
            let mut requests: Vec<ModelRequest> = Vec::new();
            let mut next = 1000u128;
            let roles = [id(300), id(301)];
            let lasting = |now: OffsetDateTime, m: Option<u16>| m.map(|m| now + time::Duration::minutes(i64::from(m)));
            let nth = |ids: Vec<Uuid>, n: u8| (!ids.is_empty()).then(|| ids[usize::from(n) % ids.len()]);
            for s in steps {
                match s {
                    Step::RequestAdd { by, subject, role, lasts } => {
                        let subject = Subject::user(person(subject).id);
                        requests.push(ModelRequest {
                            kind: RequestKind::Add,
                            rule: Request { beneficiaries: BTreeSet::from([subject.id]), ..pending(person(by).id, required, &[]) },
                            subject,
                            role: roles[usize::from(role)],
                            binding: None,
                            from: None,
                            expires_at: lasting(now, lasts),
                            accepted: Vec::new(),
                            applied: 0,
                        });
                    }
                    Step::RequestChange { by, binding, role, lasts } => {
                        if let Some(b) = nth(bindings.keys().copied().collect(), binding).map(|k| bindings[&k].clone()) {
                            requests.push(ModelRequest {
                                kind: RequestKind::Change,
                                rule: Request { beneficiaries: BTreeSet::from([b.subject.id]), ..pending(person(by).id, required, &[]) },
                                subject: b.subject, role: roles[usize::from(role)], binding: Some(b.id),
                                from: Some((b.role_id, b.expires_at)),
                                expires_at: lasting(now, lasts), accepted: Vec::new(), applied: 0,
                            });
                        }
                    }
                    Step::RequestRemove { by, binding } => {
                        if let Some(b) = nth(bindings.keys().copied().collect(), binding).map(|k| bindings[&k].clone()) {
                            requests.push(ModelRequest {
                                kind: RequestKind::Remove,
                                rule: Request { beneficiaries: BTreeSet::from([b.subject.id]), ..pending(person(by).id, required, &[]) },
                                subject: b.subject, role: b.role_id, binding: Some(b.id), from: None,
                                expires_at: b.expires_at, accepted: Vec::new(), applied: 0,
                            });
                        }
                    }
                    Step::Approve { by, request } => {
                        if requests.is_empty() { continue; }
                        let i = usize::from(request) % requests.len();
                        let who = person(by);
                        let r = &mut requests[i];
                        let verdict = approve(&r.rule, who);
                        if verdict.is_ok() {
                            r.accepted.push(who);
                            r.rule.approvals.insert(who.id);
                        }
                        if verdict != Ok(Verdict::Apply) { continue; }
                        // who counted: distinct, never the requester or the beneficiary
                        let distinct: BTreeSet<Uuid> = r.accepted.iter().map(|a| a.id).collect();
                        prop_assert_eq!(distinct.len(), r.accepted.len(), "one person counted twice");
                        prop_assert!(r.accepted.iter().all(|a| a.id != r.rule.requester && !r.rule.beneficiaries.contains(&a.id)));
                        prop_assert!(who.is_admin || distinct.len() >= required as usize, "applied with too few approvals");
                        let same = match r.kind {
                            RequestKind::Add => bindings.values().find(|b| b.subject == r.subject && b.role_id == r.role).cloned(),
                            _ => r.binding.and_then(|b| bindings.get(&b).cloned()),
                        };
                        let other = bindings.values().find(|b| b.subject == r.subject && b.role_id == r.role).cloned();
                        let eligible = members.contains(&r.subject.id);
                        let ctx = ApplyContext {
                            kind: r.kind, expires_at: r.expires_at, from: r.from, binding: same.as_ref(),
                            other: other.as_ref(), subject_eligible: eligible, requester_may_ask: true,
                        };
                        if void_reason(ctx, now).is_some() {
                            r.rule.state = RequestState::Void;
                            continue;
                        }
                        r.rule.state = RequestState::Approved;
                        r.applied += 1;
                        let touched = match (r.kind, same) {
                            (RequestKind::Add, old) => {
                                if let Some(old) = old { bindings.remove(&old.id); removed.insert(old.id); }
                                next += 1;
                                let b = Binding { id: id(next), project_id: id(1), subject: r.subject, role_id: r.role, expires_at: r.expires_at };
                                bindings.insert(b.id, b);
                                Some(id(next))
                            }
                            (RequestKind::Change, Some(b)) if ends_access(r.kind, r.expires_at, now) => {
                                // a reduction whose moment passed ends the binding
                                prop_assert_eq!(r.from, Some((b.role_id, b.expires_at)), "changed a binding that moved");
                                if let Some(b) = bindings.get_mut(&b.id) { b.expires_at = r.expires_at; }
                                prop_assert!(!bindings[&b.id].in_force_at(now), "a passed reduction left access");
                                None
                            }
                            (RequestKind::Change, Some(b)) => {
                                prop_assert_eq!(r.from, Some((b.role_id, b.expires_at)), "changed a binding that moved");
                                if let Some(o) = other.filter(|o| o.id != b.id) { bindings.remove(&o.id); removed.insert(o.id); }
                                if let Some(b) = bindings.get_mut(&b.id) { b.role_id = r.role; b.expires_at = r.expires_at; }
                                Some(b.id)
                            }
                            (RequestKind::Remove, Some(b)) => { bindings.remove(&b.id); removed.insert(b.id); None }
                            (_, None) => { prop_assert!(false, "applied a change to a missing binding"); None }
                        };
                        if let Some(t) = touched {
                            let b = &bindings[&t];
                            prop_assert!(b.in_force_at(now), "an approval created access that is already over");
                            prop_assert!(members.contains(&b.subject.id), "an approval gave access to a non-member");
                            let twins = bindings.values().filter(|o| o.subject == b.subject && o.role_id == b.role_id && o.in_force_at(now)).count();
                            prop_assert_eq!(twins, 1, "two bindings of one role in force");
                        }
                    }
                    Step::Decline { by, request } => {
                        if requests.is_empty() { continue; }
                        let i = usize::from(request) % requests.len();
                        if decline(&requests[i].rule, person(by)).is_ok() {
                            requests[i].rule.state = RequestState::Declined;
                        }
                    }
                    Step::RemoveDirectly { binding } => {
                        if let Some(k) = nth(bindings.keys().copied().collect(), binding) {
                            bindings.remove(&k);
                            removed.insert(k);
                        }
                    }
                    Step::Leave { subject } => {
                        // leaving the workspace ends the person's bindings (WS6)
                        let who = person(subject).id;
                        members.remove(&who);
                        let theirs: Vec<Uuid> = bindings.values().filter(|b| b.subject.id == who).map(|b| b.id).collect();
                        for k in theirs { bindings.remove(&k); removed.insert(k); }
                    }
                    Step::Join { subject } => { members.insert(person(subject).id); }
                    Step::Advance { minutes } => now += time::Duration::minutes(i64::from(minutes)),
                }
                for r in &requests {
                    prop_assert!(r.applied <= 1, "a request applied twice");
                    prop_assert_eq!(r.applied == 1, r.rule.state == RequestState::Approved);
                }
                prop_assert!(bindings.keys().all(|k| !removed.contains(k)), "a removed binding came back");
                prop_assert!(bindings.values().all(|b| members.contains(&b.subject.id)), "a non-member holds a binding");
            }
        }
    }
}
