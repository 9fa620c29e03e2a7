//! Node identity: the ed25519 key that names a node, its role and whom it serves.
//!
//! The public key is the node's id everywhere: the Automerge actor id of every change the node makes
//! (so each change is attributable to a device), and later the iroh endpoint id. The secret key lives
//! in its own file with owner-only permissions, apart from the human-readable profile.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::ids::{InvalidId, PatientId, StaffId};

/// File name of the secret key inside a data directory.
pub const KEY_FILE: &str = "node.key";
/// File name of the node profile inside a data directory.
pub const PROFILE_FILE: &str = "node.json";

/// What kind of node this is; it decides what the node may write and hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A base office: plans care, merges day logs into reports.
    Base,
    /// A nurse's (or health worker's) phone.
    Nurse,
    /// The tablet in a patient's home.
    HomeUnit,
}

impl Role {
    /// The role's name as used on the command line and in files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Base => "base",
            Role::Nurse => "nurse",
            Role::HomeUnit => "home-unit",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's public id: its ed25519 verifying key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// The raw 32 public-key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds an id from raw public-key bytes, checking they are a valid ed25519 point.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, InvalidId> {
        if RECENTLY_VALID.with(|recent| recent.borrow().contains(&bytes)) {
            return Ok(Self(bytes));
        }
        VerifyingKey::from_bytes(&bytes).map_err(|_| invalid_node_id(&hex::encode(bytes)))?;
        RECENTLY_VALID.with(|recent| recent.borrow_mut().remember(bytes));
        Ok(Self(bytes))
    }

    /// Parses the 64-hex-digit form.
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(value, &mut bytes).map_err(|_| invalid_node_id(value))?;
        Self::from_bytes(bytes)
    }

    /// Whether `signature` is this key's ed25519 signature of `message` (strict verification:
    /// no malleable or small-order signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        Verifiers::default().verify(self, message, signature)
    }

    /// A short prefix for human-facing output.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..5])
    }
}

thread_local! {
    /// Keys found valid lately on this thread. Checking a key decompresses a curve point (as
    /// costly as half a signature check), and every entry a document holds names its author's
    /// device: reading a month's journal checked the same few keys thousands of times.
    static RECENTLY_VALID: std::cell::RefCell<RecentKeys> = std::cell::RefCell::default();
}

/// The last few distinct keys found valid (a pure function's results: remembering one changes
/// no answer).
#[derive(Debug, Default)]
struct RecentKeys {
    keys: [Option<[u8; 32]>; 8],
    next: usize,
}

impl RecentKeys {
    fn contains(&self, bytes: &[u8; 32]) -> bool {
        self.keys.iter().any(|k| k.as_ref() == Some(bytes))
    }

    fn remember(&mut self, bytes: [u8; 32]) {
        self.keys[self.next] = Some(bytes);
        self.next = (self.next + 1) % self.keys.len();
    }
}

/// Node keys decompressed once for many checks. Turning a key's 32 bytes into a curve point
/// costs about as much as the rest of a signature check; a month a base sends holds hundreds of
/// thousands of changes by a handful of authors.
#[derive(Debug, Default)]
pub struct Verifiers(std::collections::BTreeMap<[u8; 32], Option<VerifyingKey>>);

impl Verifiers {
    fn key(&mut self, bytes: [u8; 32]) -> Option<&VerifyingKey> {
        self.0
            .entry(bytes)
            .or_insert_with(|| VerifyingKey::from_bytes(&bytes).ok())
            .as_ref()
    }

    /// The node whose key these bytes are, as [`NodeId::from_bytes`] checks it.
    pub fn node(&mut self, bytes: [u8; 32]) -> Result<NodeId, InvalidId> {
        match self.key(bytes) {
            Some(_) => Ok(NodeId(bytes)),
            None => Err(invalid_node_id(&hex::encode(bytes))),
        }
    }

    /// [`NodeId::verify`], with the node's key decompressed once.
    pub fn verify(&mut self, node: &NodeId, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key(node.0).is_some_and(|key| {
            key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
                .is_ok()
        })
    }
}

fn invalid_node_id(value: &str) -> InvalidId {
    InvalidId {
        kind: "node",
        value: value.chars().take(80).collect(),
        expected: "64 hex digits of an ed25519 public key",
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl TryFrom<String> for NodeId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, InvalidId> {
        Self::parse(&value)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.to_string()
    }
}

/// A node's secret key. Debug output never shows the secret.
#[derive(Clone)]
pub struct NodeKey(SigningKey);

impl NodeKey {
    /// Draws a new key from `rng` (the binary passes the OS RNG; tests pass a seeded one).
    pub fn generate(rng: &mut impl RngCore) -> Self {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        Self(SigningKey::from_bytes(&secret))
    }

    /// Rebuilds a key from its 32 secret bytes.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&secret))
    }

    /// The 32 secret bytes (for handing to iroh, which uses the same key type).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Signs `message` (ed25519).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.0.sign(message).to_bytes()
    }

    /// The public id of this key.
    pub fn id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.id().short())
    }
}

/// Who a node is and whom it serves; stored as `node.json` beside the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProfile {
    /// Profile format version.
    pub version: u32,
    /// The node's role.
    pub role: Role,
    /// Display name: the nurse's name, the base office, or the home.
    pub name: String,
    /// The staff member this node acts for (nurse and base nodes), e.g. an HPR or employee number.
    pub staff_id: Option<StaffId>,
    /// The patient a home unit serves.
    pub patient: Option<PatientId>,
    /// The zone or team (e.g. "Sone 1").
    pub zone: Option<String>,
}

/// Current version of the profile file.
pub const PROFILE_VERSION: u32 = 1;

/// A loaded identity: key plus profile.
#[derive(Debug)]
pub struct Identity {
    /// The secret key.
    pub key: NodeKey,
    /// The profile.
    pub profile: NodeProfile,
}

/// Failure to create or load an identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The data directory already holds an identity.
    #[error("{0} already holds a node identity; refusing to overwrite it")]
    AlreadyInitialised(PathBuf),
    /// No identity in the data directory.
    #[error("{0} holds no node identity; run `omsyn init` first")]
    NotInitialised(PathBuf),
    /// The key or profile file is malformed.
    #[error("{path} is malformed: {reason}")]
    Malformed {
        /// The offending file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// The key file can be read by others than its owner.
    #[error(
        "{path} has permissions {mode:o}; the secret key must be readable by its owner only (chmod 600)"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// A profile field is invalid.
    #[error("invalid profile: {0}")]
    InvalidProfile(String),
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Identity {
    /// Creates a new identity in `dir` (which is created if missing). Fails if one exists.
    ///
    /// The key file is created with mode 0600 atomically (never world-readable, not even briefly)
    /// and fsynced before the profile is written, so a crash leaves either no identity or a whole one.
    #[allow(
        clippy::disallowed_methods,
        reason = "the node's key and profile files: core's file IO outside the store (ARCHITECTURE, Boundary)"
    )]
    pub fn create(
        dir: &Path,
        profile: NodeProfile,
        rng: &mut impl RngCore,
    ) -> Result<Identity, IdentityError> {
        validate_profile(&profile)?;
        create_private_dir(dir)?;
        let key_path = dir.join(KEY_FILE);
        let profile_path = dir.join(PROFILE_FILE);
        if key_path.exists() || profile_path.exists() {
            return Err(IdentityError::AlreadyInitialised(dir.to_owned()));
        }
        let key = NodeKey::generate(rng);
        write_new_file(&key_path, hex::encode(key.secret_bytes()).as_bytes(), 0o600)?;
        let json = serde_json::to_vec_pretty(&profile).map_err(|e| IdentityError::Malformed {
            path: profile_path.clone(),
            reason: e.to_string(),
        })?;
        write_new_file(&profile_path, &json, 0o644)?;
        Ok(Identity { key, profile })
    }

    /// Loads the identity from `dir`, checking the key file's permissions.
    #[allow(
        clippy::disallowed_methods,
        reason = "the node's key and profile files: core's file IO outside the store (ARCHITECTURE, Boundary)"
    )]
    pub fn load(dir: &Path) -> Result<Identity, IdentityError> {
        let key_path = dir.join(KEY_FILE);
        let profile_path = dir.join(PROFILE_FILE);
        if !key_path.exists() {
            return Err(IdentityError::NotInitialised(dir.to_owned()));
        }
        check_owner_only(&key_path)?;
        let text = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut secret).map_err(|_| IdentityError::Malformed {
            path: key_path.clone(),
            reason: "expected 64 hex digits".into(),
        })?;
        let bytes = fs::read(&profile_path).map_err(io_err(&profile_path))?;
        let profile: NodeProfile =
            serde_json::from_slice(&bytes).map_err(|e| IdentityError::Malformed {
                path: profile_path.clone(),
                reason: e.to_string(),
            })?;
        if profile.version != PROFILE_VERSION {
            return Err(IdentityError::Malformed {
                path: profile_path,
                reason: format!(
                    "profile version {} is not supported (this build reads {PROFILE_VERSION})",
                    profile.version
                ),
            });
        }
        validate_profile(&profile)?;
        Ok(Identity {
            key: NodeKey::from_secret_bytes(secret),
            profile,
        })
    }

    /// The node's public id.
    pub fn id(&self) -> NodeId {
        self.key.id()
    }
}

fn validate_profile(profile: &NodeProfile) -> Result<(), IdentityError> {
    let name = profile.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(IdentityError::InvalidProfile(
            "name must be 1-200 characters".into(),
        ));
    }
    if profile.role == Role::Nurse && profile.staff_id.is_none() {
        return Err(IdentityError::InvalidProfile(
            "a nurse node needs the staff id (HPR or employee number) of the nurse it serves"
                .into(),
        ));
    }
    // Refused here, not first at approval: the base cannot certify a home unit for nobody.
    if profile.role == Role::HomeUnit && profile.patient.is_none() {
        return Err(IdentityError::InvalidProfile(
            "a home unit needs the patient it serves (the patient's id from the base)".into(),
        ));
    }
    Ok(())
}

/// The data directory holds patient data, the secret key and the daemon's control socket: only
/// its owner may enter it.
#[cfg(unix)]
#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the node's key and profile files: core's file IO outside the store (ARCHITECTURE, Boundary)"
)]
fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    fs::create_dir_all(dir).map_err(io_err(dir))
}

#[cfg(unix)]
#[allow(
    clippy::disallowed_types,
    reason = "the node's key and profile files: core's file IO outside the store (ARCHITECTURE, Boundary)"
)]
pub(crate) fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(contents).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

#[cfg(not(unix))]
pub(crate) fn write_new_file(
    path: &Path,
    contents: &[u8],
    _mode: u32,
) -> Result<(), IdentityError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(contents).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

#[cfg(unix)]
#[allow(
    clippy::disallowed_methods,
    reason = "the node's key and profile files: core's file IO outside the store (ARCHITECTURE, Boundary)"
)]
pub(crate) fn check_owner_only(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(io_err(path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_owner_only(_path: &Path) -> Result<(), IdentityError> {
    Ok(())
}
