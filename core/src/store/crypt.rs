//! Encryption at rest: every stored value that holds patient data is sealed with the store key.
//!
//! XChaCha20-Poly1305 with a *synthetic* nonce: the nonce is a keyed hash of the value's place in
//! the store and of the plaintext. The core reads no random number generator, and a synthetic
//! nonce needs none: the same plaintext at the same place gives the same ciphertext (which reveals
//! only that a value was rewritten unchanged), and different plaintexts never share a nonce. The
//! place is bound as associated data, so a sealed value moved to another key fails to open.
//!
//! Destroying the key (crypto-shredding, on revocation) makes the whole store unreadable at once,
//! without having to overwrite every page of a flash device.

use std::fs;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::identity::{self, IdentityError};

/// File name of the store key when the host does not supply one.
pub const STORE_KEY_FILE: &str = "store.key";

const NONCE_BYTES: usize = 24;
const KEY_CHECK_PLACE: &[u8] = b"omsyn/key-check";
const KEY_CHECK_TEXT: &[u8] = b"this store is Omsyn's and the key is right";

/// The 32-byte key the store is encrypted with.
#[derive(Clone)]
pub struct StoreKey([u8; 32]);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(…)")
    }
}

/// Failure to get the store key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No key file and no key supplied.
    #[error(
        "no store key: {0} is missing. The store cannot be decrypted without it; if the host supplies the key, pass it (OMSYN_STORE_KEY or --store-key-file)"
    )]
    Missing(PathBuf),
    /// The key text is malformed.
    #[error("the store key in {path} is malformed: {reason}")]
    Malformed {
        /// Where it came from.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Permission or IO problem.
    #[error(transparent)]
    File(#[from] IdentityError),
}

impl StoreKey {
    /// A key from 32 bytes the host supplies (e.g. from the Android Keystore or iOS Keychain).
    pub fn from_bytes(bytes: [u8; 32]) -> StoreKey {
        StoreKey(bytes)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<StoreKey> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(StoreKey(bytes))
    }

    /// A new random key.
    pub fn generate(rng: &mut impl RngCore) -> StoreKey {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        StoreKey(bytes)
    }

    /// Where the key file lives in a data directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STORE_KEY_FILE)
    }

    /// Creates the key file (owner-only); fails if it exists.
    pub fn create_file(path: &Path, rng: &mut impl RngCore) -> Result<StoreKey, KeyError> {
        let key = Self::generate(rng);
        identity::write_new_file(path, hex::encode(key.0).as_bytes(), 0o600)?;
        Ok(key)
    }

    /// Reads a key file, refusing one that others can read.
    #[allow(
        clippy::disallowed_methods,
        reason = "the store key file: the store's own file IO"
    )]
    pub fn load_file(path: &Path) -> Result<StoreKey, KeyError> {
        if !path.exists() {
            return Err(KeyError::Missing(path.to_owned()));
        }
        identity::check_owner_only(path)?;
        let text = fs::read_to_string(path).map_err(identity::io_err(path))?;
        Self::from_hex(&text).ok_or_else(|| KeyError::Malformed {
            path: path.to_owned(),
            reason: "expected 64 hex digits".into(),
        })
    }

    /// Overwrites the key file with zeros, syncs, and removes it: crypto-shredding.
    #[allow(
        clippy::disallowed_methods,
        clippy::disallowed_types,
        reason = "the store key file: the store's own file IO"
    )]
    pub fn shred_file(path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        if !path.exists() {
            return Ok(());
        }
        let len = fs::metadata(path)?.len() as usize;
        let mut file = fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(&vec![0u8; len.max(64)])?;
        file.sync_all()?;
        fs::remove_file(path)
    }
}

/// Seals and opens values with one key.
#[derive(Clone)]
pub(crate) struct Cipher {
    aead: XChaCha20Poly1305,
    nonce_key: [u8; 32],
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(…)")
    }
}

impl Cipher {
    pub(crate) fn new(key: &StoreKey) -> Cipher {
        // Separate keys for encryption and for deriving nonces, both from the store key.
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(label);
            h.update(key.0);
            h.finalize().into()
        };
        let enc = derive(b"omsyn/store/encryption");
        Cipher {
            aead: XChaCha20Poly1305::new((&enc).into()),
            nonce_key: derive(b"omsyn/store/nonce"),
        }
    }

    /// Encrypts `plaintext` stored at `place`. Output: nonce followed by ciphertext and tag.
    pub(crate) fn seal(&self, place: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let digest = self.fingerprint(place, plaintext);
        let nonce = XNonce::from_slice(&digest[..NONCE_BYTES]);
        let sealed = self
            .aead
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: place,
                },
            )
            // Encryption only fails for plaintexts beyond 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&digest[..NONCE_BYTES]);
        out.extend_from_slice(&sealed);
        out
    }

    /// A keyed digest of `plaintext` at `place` (what the nonce is drawn from): equal exactly
    /// when the sealed values are, and tells nothing of the plaintext without the key.
    pub(crate) fn fingerprint(&self, place: &[u8], plaintext: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.nonce_key);
        h.update((place.len() as u64).to_le_bytes());
        h.update(place);
        h.update(plaintext);
        h.finalize().into()
    }

    /// Decrypts a value sealed at `place`; `None` if the key is wrong or the value was altered.
    pub(crate) fn open(&self, place: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        self.aead
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: place,
                },
            )
            .ok()
    }

    /// The value stored in the metadata to recognise the right key before touching anything.
    pub(crate) fn key_check(&self) -> Vec<u8> {
        self.seal(KEY_CHECK_PLACE, KEY_CHECK_TEXT)
    }

    /// Whether `stored` (from [`Cipher::key_check`]) was made with this key.
    pub(crate) fn matches(&self, stored: &[u8]) -> bool {
        self.open(KEY_CHECK_PLACE, stored).as_deref() == Some(KEY_CHECK_TEXT)
    }
}

/// The place of a document chunk, bound into its ciphertext.
pub(crate) fn chunk_place(doc: &str, seq: u64) -> Vec<u8> {
    let mut place = b"chunk/".to_vec();
    place.extend_from_slice(doc.as_bytes());
    place.push(0);
    place.extend_from_slice(&seq.to_le_bytes());
    place
}

/// Where a patient's name is sealed (its associated data).
pub(crate) fn name_place(patient: &crate::ids::PatientId) -> Vec<u8> {
    format!("name/{patient}").into_bytes()
}

/// Where a patient's open conflicts of one scope are sealed.
pub(crate) fn conflict_place(patient: &str, scope: &str) -> Vec<u8> {
    format!("conflicts/{patient}/{scope}").into_bytes()
}

/// Where a patient-month's escalation triggers are sealed.
pub(crate) fn tasks_place(patient: &str, month: &str) -> Vec<u8> {
    format!("tasks/{patient}/{month}").into_bytes()
}

/// Where a day-index row is sealed.
pub(crate) fn day_place(day: &str, key: &str) -> Vec<u8> {
    format!("day/{day}/{key}").into_bytes()
}

/// The error for a stored value at `place` that does not open with the store key.
pub(crate) fn sealed_value_error(place: &str) -> super::StoreError {
    super::StoreError::Corrupt(format!(
        "{place} does not decrypt with the store key: it was altered, or written with another key"
    ))
}
