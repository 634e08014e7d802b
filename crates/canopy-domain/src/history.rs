//! History events and the hash chain that makes them tamper-evident (HI1, HI3).
//!
//! Every event names the hash of the event before it in the same chain (one
//! chain per workspace, one for the installation). Changing, deleting,
//! inserting or reordering stored events breaks a link that [`verify_chain`]
//! reports.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::names::InvalidValue;

macro_rules! event_kinds {
    ($($variant:ident => $s:literal,)*) => {
        /// What happened. Stored and filtered by its snake_case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind { $($variant,)* }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(Self::$variant,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s,)* }
            }
        }
    };
}

event_kinds! {
    WorkspaceCreated => "workspace_created",
    WorkspaceRenamed => "workspace_renamed",
    WorkspaceDeleted => "workspace_deleted",
    MemberAdded => "member_added",
    MemberRoleChanged => "member_role_changed",
    MemberRemoved => "member_removed",
    InvitationSent => "invitation_sent",
    InvitationAccepted => "invitation_accepted",
    InvitationWithdrawn => "invitation_withdrawn",
    ProjectCreated => "project_created",
    ProjectUpdated => "project_updated",
    ProjectDeleted => "project_deleted",
    BindingCreated => "binding_created",
    BindingChanged => "binding_changed",
    BindingRemoved => "binding_removed",
    BindingExpired => "binding_expired",
    RoleRequestCreated => "role_request_created",
    RoleRequestApprovalGiven => "role_request_approval_given",
    RoleRequestApproved => "role_request_approved",
    RoleRequestDeclined => "role_request_declined",
    RoleRequestVoid => "role_request_void",
    FourEyeChanged => "four_eye_changed",
    SettingsChanged => "settings_changed",
    EmergencyAccessGranted => "emergency_access_granted",
    EmergencyRevocation => "emergency_revocation",
    TagDefinitionCreated => "tag_definition_created",
    TagDefinitionUpdated => "tag_definition_updated",
    TagDefinitionDeleted => "tag_definition_deleted",
    PaymentMethodCreated => "payment_method_created",
    PaymentMethodUpdated => "payment_method_updated",
    PaymentMethodDeleted => "payment_method_deleted",
    PaymentMethodSubstituted => "payment_method_substituted",
    ApiKeyCreated => "api_key_created",
    ApiKeyDeleted => "api_key_deleted",
    UserCreated => "user_created",
    UserSignedUp => "user_signed_up",
    UserUpdated => "user_updated",
    UserDeactivated => "user_deactivated",
    UserReactivated => "user_reactivated",
    UserDeleted => "user_deleted",
    SessionsEnded => "sessions_ended",
    SignInThrottled => "sign_in_throttled",
    ScimChanged => "scim_changed",
    IdentityLinked => "identity_linked",
    GroupCreated => "group_created",
    GroupUpdated => "group_updated",
    GroupDeleted => "group_deleted",
    GroupMemberAdded => "group_member_added",
    GroupMemberRemoved => "group_member_removed",
    ProjectRoleCreated => "project_role_created",
    ProjectRoleUpdated => "project_role_updated",
    ProjectRoleDeleted => "project_role_deleted",
    PlatformCreated => "platform_created",
    PlatformUpdated => "platform_updated",
    PlatformDeleted => "platform_deleted",
    LandingZoneCreated => "landing_zone_created",
    LandingZoneUpdated => "landing_zone_updated",
    LandingZoneDeleted => "landing_zone_deleted",
    TenantCreated => "tenant_created",
    TenantReplicationRequested => "tenant_replication_requested",
    TenantReplicated => "tenant_replicated",
    TenantReplicationFailed => "tenant_replication_failed",
    TenantDriftRepaired => "tenant_drift_repaired",
    TenantDriftDetected => "tenant_drift_detected",
    TenantDeletionRequested => "tenant_deletion_requested",
    TenantDeletionConfirmed => "tenant_deletion_confirmed",
    TenantDeletionDeclined => "tenant_deletion_declined",
    TenantDeleted => "tenant_deleted",
    ProjectDeletionRequested => "project_deletion_requested",
    ProjectDeletionDeclined => "project_deletion_declined",
    HistoryChainCreated => "history_chain_created",
}

impl FromStr for EventKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidValue(format!("unknown event kind {s:?}")))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused an event (HI1): a person, an API key, or a system job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiator {
    pub kind: InitiatorKind,
    /// The user's or key's id; empty for system jobs.
    pub id: String,
    /// Username, key name or job name at the time of the event.
    pub name: String,
}

impl Initiator {
    /// A system job, e.g. `replication` or `expiry`.
    pub fn system(job: &str) -> Self {
        Initiator { kind: InitiatorKind::System, id: String::new(), name: job.to_owned() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitiatorKind {
    User,
    ApiKey,
    System,
}

impl InitiatorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::System => "system",
        }
    }
}

impl FromStr for InitiatorKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Self::User),
            "api_key" => Ok(Self::ApiKey),
            "system" => Ok(Self::System),
            _ => Err(InvalidValue("must be user, api_key or system".into())),
        }
    }
}

/// The hash the first event of every chain points back to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as stored: every field that the hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEvent {
    pub id: String,
    pub chain: String,
    pub seq: i64,
    pub kind: String,
    /// Microseconds since the Unix epoch, UTC.
    pub at_us: i64,
    pub initiator_kind: String,
    pub initiator_id: String,
    pub initiator_name: String,
    /// The details as the exact JSON text stored.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl ChainedEvent {
    /// The hash of this event over every field but `hash` itself, as lowercase hex.
    /// Each field is length-prefixed so that no two events encode alike.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let seq = self.seq.to_string();
        let at = self.at_us.to_string();
        for field in [
            "canopy-history-v1",
            &self.id,
            &self.chain,
            &seq,
            &self.kind,
            &at,
            &self.initiator_kind,
            &self.initiator_id,
            &self.initiator_name,
            &self.details,
            &self.prev_hash,
        ] {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// The first place where a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub chain: String,
    /// The sequence number where the break shows.
    pub seq: i64,
    pub event_id: Option<String>,
    pub reason: String,
}

/// Verify one chain given its events in ascending `seq` order and the head
/// the store recorded (last seq and hash). Returns the number of events checked.
pub fn verify_chain<E: Borrow<ChainedEvent>>(
    chain: &str,
    events: impl IntoIterator<Item = E>,
    head: (i64, &str),
) -> Result<u64, BrokenLink> {
    let mut verifier = ChainVerifier::new(chain);
    for e in events {
        verifier.push(e.borrow())?;
    }
    verifier.finish(head)
}

/// [`verify_chain`] an event at a time, so that a chain of any length is
/// verified in pages, holding one page in memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    chain: String,
    expected_seq: i64,
    prev: String,
    checked: u64,
}

impl ChainVerifier {
    pub fn new(chain: &str) -> ChainVerifier {
        ChainVerifier { chain: chain.to_owned(), expected_seq: 1, prev: GENESIS_HASH.to_owned(), checked: 0 }
    }

    fn broken(&self, seq: i64, id: Option<&str>, reason: String) -> BrokenLink {
        BrokenLink { chain: self.chain.clone(), seq, event_id: id.map(str::to_owned), reason }
    }

    /// The chain's next event, in ascending `seq`.
    pub fn push(&mut self, e: &ChainedEvent) -> Result<(), BrokenLink> {
        let expected_seq = self.expected_seq;
        if e.seq != expected_seq {
            return Err(self.broken(
                expected_seq,
                Some(&e.id),
                format!("event #{expected_seq} is missing (found #{} next)", e.seq),
            ));
        }
        if e.prev_hash != self.prev {
            return Err(self.broken(
                e.seq,
                Some(&e.id),
                "does not link to the event before it (deleted, inserted or reordered)".into(),
            ));
        }
        if e.compute_hash() != e.hash {
            return Err(self.broken(e.seq, Some(&e.id), "its content was changed after it was recorded".into()));
        }
        self.prev.clone_from(&e.hash);
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// After the last event: whether the chain ends at the head the store
    /// recorded. Returns the number of events checked.
    pub fn finish(self, head: (i64, &str)) -> Result<u64, BrokenLink> {
        let (head_seq, head_hash) = head;
        let found = self.expected_seq - 1;
        if head_seq != found || head_hash != self.prev {
            return Err(self.broken(
                self.expected_seq,
                None,
                if head_seq > found {
                    format!(
                        "the chain's head records {head_seq} events but only {found} remain (events were removed from its end)"
                    )
                } else {
                    format!(
                        "the chain's head records {head_seq} events but {found} were found (events were added behind its head)"
                    )
                },
            ));
        }
        Ok(self.checked)
    }
}

/// What is wrong with the history, found by verification: a broken link, a
/// chain that is missing, or a checkpoint that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryProblem {
    /// `broken_link`, `chain_missing`, or a [`crate::checkpoint::CheckpointFault`]'s code.
    pub code: &'static str,
    /// The chain's label: the workspace's identifier, or `installation`.
    pub chain: String,
    /// The chain's id: the workspace's id, or `installation`.
    pub chain_id: String,
    /// The sequence number concerned, where one is.
    pub seq: Option<i64>,
    pub event_id: Option<String>,
    pub reason: String,
}

impl HistoryProblem {
    /// A broken link of the chain `chain_id` (whose label `verify_chain` was given).
    pub fn broken_link(b: BrokenLink, chain_id: &str) -> Self {
        Self {
            code: "broken_link",
            chain: b.chain,
            chain_id: chain_id.to_owned(),
            seq: Some(b.seq),
            event_id: b.event_id,
            reason: b.reason,
        }
    }

    /// A checkpoint of `label`'s chain `chain_id` at `seq` that does not hold.
    pub fn checkpoint(fault: &crate::checkpoint::CheckpointFault, chain_id: &str, label: &str, seq: i64) -> Self {
        Self {
            code: fault.code(),
            chain: label.to_owned(),
            chain_id: chain_id.to_owned(),
            seq: Some(seq),
            event_id: None,
            reason: format!("the checkpoint at event #{seq}: {fault}"),
        }
    }
}

/// The details of the installation event that records a new chain, as
/// untyped JSON for callers not converted to
/// [`crate::events::HistoryChainCreated`] yet.
pub fn chain_created_details(chain_id: &str, label: &str) -> serde_json::Value {
    let event = crate::events::HistoryChainCreated {
        workspace: label.to_owned(),
        chain: chain_id.to_owned(),
        recorded_later: false,
    };
    serde_json::to_value(event).unwrap_or_default()
}

/// The chain (id, label) that an installation event records as created, if it is such an event.
pub fn created_chain(e: &ChainedEvent) -> Option<(String, String)> {
    if e.kind != EventKind::HistoryChainCreated.as_str() {
        return None;
    }
    let details: serde_json::Value = serde_json::from_str(&e.details).ok()?;
    let chain = details.get("chain")?.as_str()?.to_owned();
    let label = details.get("workspace").and_then(|w| w.as_str()).unwrap_or(&chain).to_owned();
    Some((chain, label))
}

/// Chains that must exist and do not: every workspace (id, identifier) has
/// its chain, and every chain that the installation chain recorded as created
/// (`recorded`, from [`created_chain`]) still exists, its workspace deleted or
/// not (a deleted workspace's history is kept). Each missing chain once.
pub fn missing_chains(
    workspaces: &[(String, String)],
    chains: &BTreeSet<String>,
    recorded: &[(String, String)],
) -> Vec<HistoryProblem> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (id, label) in workspaces {
        if !chains.contains(id) && seen.insert(id.clone()) {
            out.push(HistoryProblem {
                code: "chain_missing",
                chain: label.clone(),
                chain_id: id.clone(),
                seq: None,
                event_id: None,
                reason: format!(
                    "workspace {label} exists but its history chain is gone (its events and head were deleted)"
                ),
            });
        }
    }
    for (id, label) in recorded {
        if !chains.contains(id) && seen.insert(id.clone()) {
            out.push(HistoryProblem {
                code: "chain_missing",
                chain: label.clone(),
                chain_id: id.clone(),
                seq: None,
                event_id: None,
                reason: format!(
                    "the installation history records the creation of workspace {label}'s chain, but the chain is gone"
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<ChainedEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = ChainedEvent {
                    id: format!("e{seq}"),
                    chain: "c".into(),
                    seq,
                    kind: "member_added".into(),
                    at_us: seq * 1000,
                    initiator_kind: "user".into(),
                    initiator_id: "u".into(),
                    initiator_name: "ann".into(),
                    details: format!("{{\"n\":{seq}}}"),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn head(events: &[ChainedEvent]) -> (i64, String) {
        events.last().map(|e| (e.seq, e.hash.clone())).unwrap_or((0, GENESIS_HASH.into()))
    }

    #[test]
    fn hi3_intact_chain_verifies() {
        let c = chain(5);
        let (s, h) = head(&c);
        assert_eq!(verify_chain("c", c, (s, &h)), Ok(5));
        assert_eq!(verify_chain("c", Vec::<ChainedEvent>::new(), (0, GENESIS_HASH)), Ok(0));
    }

    #[test]
    fn hi3_edited_event_is_caught() {
        let mut c = chain(5);
        let (s, h) = head(&c);
        c[2].details = "{\"n\":99}".into();
        assert_eq!(verify_chain("c", c, (s, &h)).map_err(|b| b.seq), Err(3));
    }

    #[test]
    fn hi3_deleted_and_reordered_events_are_caught() {
        let c = chain(5);
        let (s, h) = head(&c);
        let mut deleted = c.clone();
        deleted.remove(1);
        assert_eq!(verify_chain("c", deleted, (s, &h)).map_err(|b| b.seq), Err(2));

        // swap the contents of #2 and #3 but keep the sequence numbers in place
        let mut swapped = c.clone();
        let (a, b) = (swapped[1].clone(), swapped[2].clone());
        swapped[1] = ChainedEvent { seq: 2, ..b };
        swapped[2] = ChainedEvent { seq: 3, ..a };
        assert_eq!(verify_chain("c", swapped, (s, &h)).map_err(|b| b.seq), Err(2));

        let mut truncated = c;
        truncated.pop();
        assert!(verify_chain("c", truncated, (s, &h)).is_err());
    }

    #[test]
    fn se7_missing_chains_are_named_once() {
        let chains: BTreeSet<String> = ["installation", "w1", "w3"].into_iter().map(String::from).collect();
        let workspaces = vec![("w1".to_owned(), "one".to_owned()), ("w2".to_owned(), "two".to_owned())];
        let recorded = vec![
            ("w1".to_owned(), "one".to_owned()),
            ("w2".to_owned(), "two".to_owned()),
            ("w3".to_owned(), "three".to_owned()),
            ("w4".to_owned(), "four".to_owned()),
        ];
        let missing: Vec<_> =
            missing_chains(&workspaces, &chains, &recorded).into_iter().map(|p| (p.chain_id, p.chain)).collect();
        assert_eq!(missing, [("w2".to_owned(), "two".to_owned()), ("w4".to_owned(), "four".to_owned())]);
        let mut e = chain(1).remove(0);
        e.kind = EventKind::HistoryChainCreated.as_str().into();
        e.details = chain_created_details("w9", "nine").to_string();
        assert_eq!(created_chain(&e), Some(("w9".to_owned(), "nine".to_owned())));
    }

    #[test]
    fn event_kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(*k));
        }
    }
}
