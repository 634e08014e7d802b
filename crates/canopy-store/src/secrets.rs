//! Encryption of platform secrets at rest.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::StoreError;

const NONCE_LEN: usize = 24;

/// The 256-bit key that encrypts secrets at rest. Never printed.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from its base64 text (as in `CANOPY_SECRET_KEY` or a key file).
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| StoreError::Corrupt(format!("the secret key is not base64: {e}")))?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|_| StoreError::Corrupt("the secret key must be 32 bytes".into()))?;
        Ok(Self(bytes))
    }

    /// A new random key.
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Corrupt(format!("random bytes: {e}")))?;
        Ok(Self(bytes))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Encrypt `plaintext`, bound to `context` (e.g. the owning row's id):
    /// base64 of nonce || ciphertext.
    pub(crate) fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, StoreError> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Corrupt(format!("random bytes: {e}")))?;
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .map_err(|_| StoreError::Corrupt("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// Decrypt what [`SecretKey::seal`] produced for the same `context`.
    pub(crate) fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| StoreError::Corrupt("sealed secret is not base64".into()))?;
        if bytes.len() < NONCE_LEN {
            return Err(StoreError::Corrupt("sealed secret is too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| StoreError::Corrupt("sealed secret has no nonce".into()))?;
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher.decrypt(&nonce, Payload { msg: ciphertext, aad: context.as_bytes() }).map_err(|_| {
            StoreError::Corrupt("a secret cannot be decrypted: wrong secret key, or the row was altered".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tn1_secrets_round_trip_and_are_bound_to_their_row() {
        let key = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let sealed = key.seal("row-1", b"s3cr3t").unwrap_or_else(|e| panic!("{e}"));
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(key.open("row-1", &sealed).ok(), Some(b"s3cr3t".to_vec()));
        assert!(key.open("row-2", &sealed).is_err(), "moved to another row");
        let other = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert!(other.open("row-1", &sealed).is_err(), "another key");
        assert_eq!(SecretKey::from_base64(&key.to_base64()).map(|k| k.0).ok(), Some(key.0));
    }
}
