//! Signed checkpoints of the history (SE7).
//!
//! The hash chain ([`crate::history`]) shows any change *inside* a chain,
//! but the database holds both the events and each chain's head: whoever can
//! write to it can cut events off a chain's end and move the head back, or
//! drop a whole chain, and what remains still links. A checkpoint is the
//! installation's signed statement "chain C (label L) had S events, the last
//! with hash H, at instant T", made with an Ed25519 key that the database
//! does not hold. Kept outside (an auditor's file, a webhook's receiver), it
//! proves later that the chain still reaches S with the same event there:
//! given that every link holds, that means events 1..=S are the ones that
//! were signed.
//!
//! Everything here is pure: the key's bytes come from outside (the binary
//! reads or creates the key file), and so does the instant.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::history::{ChainedEvent, GENESIS_HASH};
use crate::names::InvalidValue;

/// The longest chain id or label a checkpoint may carry (a workspace's id is
/// 36 characters, an identifier at most 63).
pub const MAX_CHAIN_LEN: usize = 100;

/// The installation's key for signing checkpoints. Never printed.
#[derive(Clone)]
pub struct HistoryKey(SigningKey);

impl fmt::Debug for HistoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HistoryKey({}, ***)", self.key_id())
    }
}

impl HistoryKey {
    /// The key from its 32-byte seed (random bytes the caller drew).
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The key from the base64 of its seed (as in `CANOPY_HISTORY_KEY` or a key file).
    pub fn from_base64(text: &str) -> Result<Self, InvalidValue> {
        let bytes =
            STANDARD.decode(text.trim()).map_err(|e| InvalidValue(format!("the history key is not base64: {e}")))?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| InvalidValue("the history key must be 32 bytes".into()))?;
        Ok(Self::from_bytes(seed))
    }

    /// The base64 of the seed, as a key file holds it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn key_id(&self) -> String {
        self.public_key().key_id()
    }

    /// A checkpoint of `head`, made at `at`.
    pub fn sign(&self, head: &ChainHead, at: OffsetDateTime) -> Checkpoint {
        let mut cp = Checkpoint {
            chain: head.chain.clone(),
            label: head.label.clone(),
            seq: head.seq,
            hash: head.hash.clone(),
            at,
            key_id: self.key_id(),
            signature: String::new(),
        };
        cp.signature = STANDARD.encode(self.0.sign(&cp.message()).to_bytes());
        cp
    }
}

/// The public half of a [`HistoryKey`]: what an auditor keeps to check
/// checkpoints, and what verification checks them against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// A public key from its base64 (32 bytes).
    pub fn from_base64(text: &str) -> Result<Self, InvalidValue> {
        let bytes =
            STANDARD.decode(text.trim()).map_err(|e| InvalidValue(format!("the public key is not base64: {e}")))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| InvalidValue("the public key must be 32 bytes".into()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| InvalidValue("the public key is not an Ed25519 point".into()))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// A short name of the key: the first 16 hex digits of the SHA-256 of its bytes.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    /// Whether `cp` was signed by this key, unchanged.
    pub fn check_signature(&self, cp: &Checkpoint) -> Result<(), CheckpointFault> {
        let expected = self.key_id();
        if cp.key_id != expected {
            return Err(CheckpointFault::OtherKey { found: cp.key_id.clone(), expected });
        }
        let bytes = STANDARD.decode(&cp.signature).map_err(|_| CheckpointFault::BadSignature)?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| CheckpointFault::BadSignature)?;
        self.0.verify_strict(&cp.message(), &Signature::from_bytes(&bytes)).map_err(|_| CheckpointFault::BadSignature)
    }
}

/// A chain's head: its id, label, last sequence number and the last event's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// A workspace's id, or `installation`.
    pub chain: String,
    /// The workspace's identifier, or `installation`.
    pub label: String,
    pub seq: i64,
    pub hash: String,
}

/// The most checkpoints one verification takes at once.
pub const MAX_CHECKPOINTS: usize = 10_000;

/// A signed checkpoint, in the form the API answers, the export writes and
/// verification takes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub chain: String,
    pub label: String,
    pub seq: i64,
    /// The hash of the chain's event at `seq` ([`GENESIS_HASH`] at 0).
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub key_id: String,
    /// The Ed25519 signature of [`Checkpoint::message`], base64.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes the signature covers: every field but the signature, each
    /// length-prefixed (as the chain's hash does), the instant to the nanosecond.
    pub fn message(&self) -> Vec<u8> {
        let seq = self.seq.to_string();
        let at = self.at.unix_timestamp_nanos().to_string();
        let mut out = Vec::with_capacity(256);
        for field in ["canopy-checkpoint-v1", &self.chain, &self.label, &seq, &self.hash, &at, &self.key_id] {
            out.extend_from_slice(&(field.len() as u64).to_le_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out
    }

    /// The fields that cannot belong to any checkpoint, each with why
    /// (empty when every field has a possible form).
    pub fn invalid_fields(&self) -> Vec<(&'static str, InvalidValue)> {
        let mut out = Vec::new();
        let text = |s: &str| !s.is_empty() && s.chars().count() <= MAX_CHAIN_LEN && !s.chars().any(char::is_control);
        if !text(&self.chain) {
            out.push(("chain", InvalidValue(format!("must be 1 to {MAX_CHAIN_LEN} characters"))));
        }
        if !text(&self.label) {
            out.push(("label", InvalidValue(format!("must be 1 to {MAX_CHAIN_LEN} characters"))));
        }
        if self.seq < 0 {
            out.push(("seq", InvalidValue("must be 0 or more".into())));
        }
        if !is_lower_hex(&self.hash, 64) {
            out.push(("hash", InvalidValue("must be 64 lowercase hexadecimal digits".into())));
        }
        if !is_lower_hex(&self.key_id, 16) {
            out.push(("key_id", InvalidValue("must be 16 lowercase hexadecimal digits".into())));
        }
        if STANDARD.decode(&self.signature).map(|b| b.len()) != Ok(64) {
            out.push(("signature", InvalidValue("must be the base64 of 64 bytes".into())));
        }
        out
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why a checkpoint does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFault {
    #[error("it is signed by key {found}, not by this installation's key {expected}")]
    OtherKey { found: String, expected: String },
    #[error("its signature does not hold: the checkpoint was changed after it was signed, or forged")]
    BadSignature,
    #[error("the chain no longer exists (it was deleted)")]
    ChainGone,
    #[error("the chain ends at event #{head} but the checkpoint saw #{seq} (events were removed from its end)")]
    Truncated { seq: i64, head: i64 },
    #[error("event #{seq} is no longer the one the checkpoint saw (the chain was rewritten)")]
    Rewritten { seq: i64 },
}

impl CheckpointFault {
    /// A stable name of the fault, for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Self::OtherKey { .. } => "checkpoint_other_key",
            Self::BadSignature => "checkpoint_bad_signature",
            Self::ChainGone => "checkpoint_chain_gone",
            Self::Truncated { .. } => "checkpoint_truncated",
            Self::Rewritten { .. } => "checkpoint_rewritten",
        }
    }
}

/// Whether a checkpoint still holds: signed by `key` as it is, and its chain
/// (`events` in ascending `seq`, `None` when the chain is gone) still reaches
/// its `seq` with the same event there. Whether the chain's links hold is
/// [`crate::history::verify_chain`]'s question; together they prove that the
/// chain's first `seq` events are the ones that were signed.
pub fn check_checkpoint(
    key: &PublicKey,
    cp: &Checkpoint,
    events: Option<&[ChainedEvent]>,
) -> Result<(), CheckpointFault> {
    let at = events.map(|events| ChainAt {
        hash_at_seq: events.binary_search_by_key(&cp.seq, |e| e.seq).ok().map(|i| events[i].hash.as_str()),
        last_seq: events.last().map_or(0, |e| e.seq),
    });
    check_checkpoint_at(key, cp, at)
}

/// What a chain holds where a checkpoint points: the hash of its event at
/// the checkpoint's `seq` (if it has one) and the `seq` of its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainAt<'a> {
    pub hash_at_seq: Option<&'a str>,
    pub last_seq: i64,
}

/// [`check_checkpoint`] against what was read of the chain while it was
/// verified in pages (`None` when the chain is gone).
pub fn check_checkpoint_at(
    key: &PublicKey,
    cp: &Checkpoint,
    chain: Option<ChainAt<'_>>,
) -> Result<(), CheckpointFault> {
    key.check_signature(cp)?;
    let chain = chain.ok_or(CheckpointFault::ChainGone)?;
    if cp.seq == 0 {
        return if cp.hash == GENESIS_HASH { Ok(()) } else { Err(CheckpointFault::Rewritten { seq: 0 }) };
    }
    match chain.hash_at_seq {
        Some(hash) if hash == cp.hash => Ok(()),
        Some(_) => Err(CheckpointFault::Rewritten { seq: cp.seq }),
        None if chain.last_seq < cp.seq => Err(CheckpointFault::Truncated { seq: cp.seq, head: chain.last_seq }),
        None => Err(CheckpointFault::Rewritten { seq: cp.seq }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed set-up is a failed test
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
                    at_us: seq,
                    initiator_kind: "user".into(),
                    initiator_id: "u".into(),
                    initiator_name: "ann".into(),
                    details: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn head(events: &[ChainedEvent]) -> ChainHead {
        let last = events.last().unwrap();
        ChainHead { chain: "c".into(), label: "ws".into(), seq: last.seq, hash: last.hash.clone() }
    }

    fn key(byte: u8) -> HistoryKey {
        HistoryKey::from_bytes([byte; 32])
    }

    const AT: OffsetDateTime = time::macros::datetime!(2026-11-23 10:00:00.123456789 UTC);

    #[test]
    fn se7_a_checkpoint_holds_for_its_chain_and_longer_ones() {
        let k = key(1);
        let events = chain(6);
        let cp = k.sign(&head(&events[..4]), AT);
        assert!(cp.invalid_fields().is_empty(), "{:?}", cp.invalid_fields());
        assert_eq!(check_checkpoint(&k.public_key(), &cp, Some(&events[..4])), Ok(()));
        assert_eq!(check_checkpoint(&k.public_key(), &cp, Some(&events)), Ok(()), "the chain grew since");
        // it survives its JSON form
        let back: Checkpoint = serde_json::from_str(&serde_json::to_string(&cp).unwrap()).unwrap();
        assert_eq!(check_checkpoint(&k.public_key(), &back, Some(&events)), Ok(()));
    }

    #[test]
    fn se7_truncated_rewritten_and_deleted_chains_are_caught() {
        let k = key(1);
        let events = chain(6);
        let cp = k.sign(&head(&events), AT);
        let pk = k.public_key();
        assert_eq!(check_checkpoint(&pk, &cp, Some(&events[..3])), Err(CheckpointFault::Truncated { seq: 6, head: 3 }));
        assert_eq!(check_checkpoint(&pk, &cp, None), Err(CheckpointFault::ChainGone));
        // the same length, rebuilt with other events
        let mut other = chain(6);
        other[5].details = "{\"x\":1}".into();
        other[5].hash = other[5].compute_hash();
        assert_eq!(check_checkpoint(&pk, &cp, Some(&other)), Err(CheckpointFault::Rewritten { seq: 6 }));
    }

    #[test]
    fn se7_changed_or_foreign_checkpoints_fail_their_signature() {
        let k = key(1);
        let events = chain(6);
        let cp = k.sign(&head(&events), AT);
        let pk = k.public_key();
        for changed in [
            Checkpoint { seq: 5, hash: events[4].hash.clone(), ..cp.clone() },
            Checkpoint { label: "other".into(), ..cp.clone() },
            Checkpoint { at: AT + time::Duration::nanoseconds(1), ..cp.clone() },
            Checkpoint { chain: "d".into(), ..cp.clone() },
        ] {
            assert_eq!(check_checkpoint(&pk, &changed, Some(&events)), Err(CheckpointFault::BadSignature));
        }
        let foreign = key(2).sign(&head(&events), AT);
        assert!(matches!(check_checkpoint(&pk, &foreign, Some(&events)), Err(CheckpointFault::OtherKey { .. })));
        // another key that claims this key's id
        let claimed = Checkpoint { key_id: k.key_id(), ..foreign };
        assert_eq!(check_checkpoint(&pk, &claimed, Some(&events)), Err(CheckpointFault::BadSignature));
    }

    #[test]
    fn se7_keys_round_trip_and_are_never_printed() {
        let k = key(7);
        let again = HistoryKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(again.public_key(), k.public_key());
        assert_eq!(PublicKey::from_base64(&k.public_key().to_base64()).unwrap(), k.public_key());
        assert!(!format!("{k:?}").contains(&k.to_base64()));
        assert_eq!(k.key_id().len(), 16);
        assert!(HistoryKey::from_base64("AAAA").is_err());
        assert!(HistoryKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn se7_fields_of_no_possible_checkpoint_are_named() {
        let cp = Checkpoint {
            chain: String::new(),
            label: "x".repeat(MAX_CHAIN_LEN + 1),
            seq: -1,
            hash: "ABC".into(),
            at: AT,
            key_id: "zz".into(),
            signature: "AAAA".into(),
        };
        let fields: Vec<_> = cp.invalid_fields().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["chain", "label", "seq", "hash", "key_id", "signature"]);
    }
}
