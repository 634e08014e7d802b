//! Credentials: password hashing within bounds (SE1), and the random
//! secrets of session tokens and API keys, stored only as hashes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{Argon2, PasswordHasher};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// Prefix of session tokens from `POST /auth/token`.
pub const SESSION_PREFIX: &str = "cnp_s_";
/// Prefix of API key secrets.
pub const API_KEY_PREFIX: &str = "cnp_k_";

/// Bounds the password hashing that requests do (SE1): argon2id takes 19 MiB
/// and tens of milliseconds by design, so at most one hash per core runs at
/// once, a bounded queue waits for them briefly, and whatever exceeds that is
/// shed with 503 and `Retry-After` before it costs memory or a database write.
///
/// Each permit owns its argon2 memory, allocated once and reused by every
/// verification under it: freeing and allocating 19 MiB per sign-in let the
/// allocator keep fragments (the sign-in bench saw 376 MiB resident after a
/// burst); with the memory kept, the process holds `permits × 19 MiB` at most,
/// whatever the burst.
#[derive(Debug)]
pub struct PasswordHashing {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    wait_at_most: std::time::Duration,
    memory: Arc<std::sync::Mutex<Vec<Vec<argon2::Block>>>>,
}

/// Leave to hash one password now (a permit of [`PasswordHashing`]), with
/// the argon2 memory that goes with it.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    memory: Vec<argon2::Block>,
    pool: Arc<std::sync::Mutex<Vec<Vec<argon2::Block>>>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        // the memory goes back for the next admission, never to the allocator
        let memory = std::mem::take(&mut self.memory);
        if !memory.is_empty() {
            self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
        }
    }
}

impl PasswordHashing {
    /// `concurrency` hashes at once, and a queue of 64 per permit that waits
    /// at most 5 s (a hash takes tens of milliseconds: a full queue drains
    /// within a few seconds). Only hashes in progress hold memory.
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            waiting: AtomicUsize::new(0),
            max_waiting: concurrency.saturating_mul(64),
            wait_at_most: std::time::Duration::from_secs(5),
            memory: Arc::default(),
        }
    }

    /// One hash at a time per core of this machine.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    fn admitted(&self, permit: OwnedSemaphorePermit) -> Admission {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        Admission { _permit: permit, memory, pool: self.memory.clone() }
    }

    /// Wait for leave to hash, or refuse at once (503) when too many wait.
    pub async fn admit(&self) -> Result<Admission, Error> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(self.admitted(p));
        }
        let busy = || Error::Unavailable {
            detail: "too many sign-ins and password changes at once; try again in a moment".into(),
            retry_after: 1,
        };
        // counted out again however this wait ends, a client hanging up included
        let _waiting = Waiting::enter(&self.waiting);
        if self.waiting.load(Ordering::SeqCst) > self.max_waiting {
            return Err(busy());
        }
        let got = tokio::time::timeout(self.wait_at_most, self.permits.clone().acquire_owned()).await;
        match got {
            Ok(Ok(p)) => Ok(self.admitted(p)),
            _ => Err(busy()),
        }
    }

    /// Hash a new password (admitted first).
    pub async fn hash(&self, password: String) -> Result<String, Error> {
        let admission = self.admit().await?;
        hash_password_admitted(admission, password).await
    }
}

/// One request waiting for a hashing permit, counted while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Hash a password with argon2id, off the async runtime. Requests go through
/// [`PasswordHashing`]; this is for the one-off bootstrap.
pub async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| Error::Internal(format!("hashing task: {e}")))?
}

/// Hash a password under an [`Admission`] (new passwords are set by
/// signed-in people, rarely: the hot path is verification). The admission
/// goes into the hashing task, so that its permit is held until the hash
/// ends even when the client hangs up first.
pub async fn hash_password_admitted(admission: Admission, password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let _held = admission;
        hash_now(&password)
    })
    .await
    .map_err(|e| Error::Internal(format!("hashing task: {e}")))?
}

/// argon2id with its default parameters, as a PHC string (blocking).
fn hash_now(password: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

/// The largest argon2 memory a stored hash may ask for (64 MiB, in 1 KiB
/// blocks): Canopy's own hashes take 19 MiB.
const MAX_BLOCKS: usize = 64 * 1024;

/// Whether `password` matches `hash`, computed in the admission's memory;
/// the admission comes back for a further hash (none when the task failed).
/// The admission goes into the hashing task, so that its permit and memory
/// are held until the hash ends even when the client hangs up first (the
/// request's future is then dropped, the task is not). Without a hash
/// (unknown user, no local password) a dummy hash is checked anyway so that
/// timing does not tell.
pub async fn verify_password(
    mut admission: Admission,
    password: String,
    hash: Option<String>,
) -> (bool, Option<Admission>) {
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Qw3pZ5mXq0uQ0x9y8kq9m3V3yWw9cQeY2cN0uXcN3rA";
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| DUMMY.to_owned());
    let task = tokio::task::spawn_blocking(move || {
        let ok = verify_in(&mut admission.memory, password.as_bytes(), &hash);
        (ok, admission)
    });
    match task.await {
        Ok((ok, admission)) => (ok && known, Some(admission)),
        Err(_) => (false, None),
    }
}

/// Argon2 verification of `password` against the PHC string `hash`, in
/// `memory` (grown once to the hash's size, then reused).
fn verify_in(memory: &mut Vec<argon2::Block>, password: &[u8], hash: &str) -> bool {
    use argon2::password_hash::phc::{Output, PasswordHash};
    use argon2::{Algorithm, Params, Version};
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else { return false };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::new());
    }
    let Some(work) = memory.get_mut(..blocks) else { return false };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params);
    if argon.hash_password_into_with_memory(password, salt, &mut out, work).is_err() {
        return false;
    }
    // Output's equality is constant-time
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

/// A new random secret with `prefix`, and the hash under which it is stored.
pub fn new_secret(prefix: &str) -> Result<(String, String), Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("random bytes: {e}")))?;
    let secret = format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(&secret);
    Ok((secret, hash))
}

/// Tokens and keys are stored only as this hash. They are long random
/// strings, so a fast hash suffices (no dictionary to attack).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn se1_password_hashing_is_bounded_and_sheds_what_exceeds_its_queue() {
        let hashing = Arc::new(PasswordHashing::new(1));
        let held = hashing.admit().await.unwrap();
        // a verification in the permit's memory, which stays with the pool
        let hash = hash_password("a-password-for-the-test".into()).await.unwrap();
        let (ok, held) = verify_password(held, "a-password-for-the-test".into(), Some(hash.clone())).await;
        assert!(ok);
        let (ok, held) = verify_password(held.unwrap(), "not-the-password".into(), Some(hash.clone())).await;
        assert!(!ok);
        let (ok, held) = verify_password(held.unwrap(), "a-password-for-the-test".into(), None).await;
        assert!(!ok);
        let (ok, held) = verify_password(held.unwrap(), "x".into(), Some("not a hash".into())).await;
        assert!(!ok);
        let held = held.unwrap();
        assert_eq!(held.memory.len(), 19 * 1024);
        // a waiter that gives up (a client hanging up) leaves the queue
        let gone = tokio::time::timeout(std::time::Duration::from_millis(20), hashing.admit()).await;
        assert!(gone.is_err());
        assert_eq!(hashing.waiting.load(Ordering::SeqCst), 0);
        // the queue fills: 64 wait for the one permit
        let waiting: Vec<_> = (0..64)
            .map(|_| {
                let h = hashing.clone();
                tokio::spawn(async move { h.admit().await.is_ok() })
            })
            .collect();
        while hashing.waiting.load(Ordering::SeqCst) < 64 {
            tokio::task::yield_now().await;
        }
        // the next is refused at once, with a Retry-After
        match hashing.admit().await {
            Err(Error::Unavailable { retry_after, .. }) => assert_eq!(retry_after, 1),
            other => panic!("expected 503, got {other:?}"),
        }
        // and those waiting get their turn, one at a time
        drop(held);
        for w in waiting {
            assert!(w.await.unwrap_or(false));
        }
        assert_eq!(hashing.waiting.load(Ordering::SeqCst), 0);
    }
}
