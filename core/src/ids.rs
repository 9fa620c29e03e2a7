//! Identifier newtypes.
//!
//! Every id that crosses a document, a file or the wire is a newtype so that a visit id can never be
//! passed where a patient id is expected. Ids are random (drawn from an injected RNG, never from the
//! OS directly, so a seeded run replays), carry a one-letter kind prefix that makes them readable in
//! the CLI (`p-…` for patients), and are validated when parsed because they arrive from users and peers.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// An id string failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {value:?}: expected {expected}")]
pub struct InvalidId {
    /// Which kind of id was being parsed ("patient", "visit", ...).
    pub kind: &'static str,
    /// The rejected input (truncated to a sane length).
    pub value: String,
    /// What a valid id looks like.
    pub expected: &'static str,
}

/// Number of random bytes in a generated id. 64 bits keep ids short enough to type while making a
/// collision among the ~5 million entries a mid-size municipality writes in a year vanishingly unlikely.
const RANDOM_ID_BYTES: usize = 8;

/// The text conversions every id shares: shown as its text, parsed (validated) from text, and
/// serialised as text through `TryFrom<String>` / `Into<String>`.
macro_rules! text_id_impls {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }
    };
}

macro_rules! random_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Draws a fresh id from `rng`.
            pub fn random(rng: &mut impl RngCore) -> Self {
                let mut bytes = [0u8; RANDOM_ID_BYTES];
                rng.fill_bytes(&mut bytes);
                Self(format!("{}-{}", $prefix, hex::encode(bytes)))
            }

            /// Parses and validates an id given by a user or a peer.
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                let valid = value
                    .strip_prefix(concat!($prefix, "-"))
                    .is_some_and(|rest| {
                        rest.len() == RANDOM_ID_BYTES * 2
                            && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    });
                if valid {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(InvalidId {
                        kind: $kind,
                        value: value.chars().take(64).collect(),
                        expected: concat!("\"", $prefix, "-\" followed by 16 lowercase hex digits"),
                    })
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's random bytes (its compact wire form).
            pub fn to_bytes(&self) -> [u8; RANDOM_ID_BYTES] {
                let mut out = [0u8; RANDOM_ID_BYTES];
                // Invariant: `parse` and `random` only build ids of exactly this many hex digits.
                let _ = hex::decode_to_slice(&self.0[$prefix.len() + 1..], &mut out);
                out
            }

            /// Rebuilds an id from its random bytes.
            pub fn from_bytes(bytes: [u8; RANDOM_ID_BYTES]) -> Self {
                Self(format!("{}-{}", $prefix, hex::encode(bytes)))
            }
        }

        text_id_impls!($name);
    };
}

random_id!(
    /// A patient (care recipient).
    PatientId, "p", "patient"
);
random_id!(
    /// One planned visit.
    VisitId, "v", "visit"
);
random_id!(
    /// One journal, message or day-log entry. Entries are immutable, so the id names one fact forever.
    EntryId, "e", "entry"
);
random_id!(
    /// A vedtak (municipal decision granting a service).
    VedtakId, "d", "vedtak"
);
random_id!(
    /// A tiltak (concrete measure under a vedtak).
    TiltakId, "t", "tiltak"
);
random_id!(
    /// A medication on a patient's medication list.
    MedicationId, "m", "medication"
);
random_id!(
    /// A patient flag (fall risk, key at neighbour...).
    FlagId, "f", "flag"
);
random_id!(
    /// A patient contact (next of kin, GP...).
    ContactId, "c", "contact"
);

/// Digest ids: not drawn at random but derived from what they name (a conflict's kind and the
/// facts involved), so every replica holding the same facts derives the same id.
macro_rules! derived_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id of what `parts` name (length-prefixed, so no two part lists collide).
            pub(crate) fn derive(parts: &[&str]) -> Self {
                use sha2::{Digest, Sha256};
                let mut hasher = Sha256::new();
                for part in parts {
                    hasher.update((part.len() as u64).to_le_bytes());
                    hasher.update(part.as_bytes());
                }
                let digest = hasher.finalize();
                Self(format!("{}-{}", $prefix, hex::encode(&digest[..8])))
            }

            /// Parses an id given by a user or peer.
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                let ok = value
                    .strip_prefix(concat!($prefix, "-"))
                    .is_some_and(|r| r.len() == 16 && r.bytes().all(|b| b.is_ascii_hexdigit()));
                if ok {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(InvalidId {
                        kind: $kind,
                        value: value.chars().take(64).collect(),
                        expected: concat!("\"", $prefix, "-\" followed by 16 hex digits"),
                    })
                }
            }
        }

        text_id_impls!($name);
    };
}

derived_id!(
    /// A safety conflict's stable id (see [`crate::conflict`]).
    ConflictId, "x", "conflict"
);
derived_id!(
    /// A task's stable id (see [`crate::escalation`]).
    TaskId, "o", "task"
);

/// A staff member's identifier: employee number or HPR number, as the municipality issues it.
///
/// Not random: it comes from the employer. Validated to a conservative alphabet because it ends up in
/// document ids and file names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StaffId(String);

impl StaffId {
    /// Parses and validates a staff id: 1–32 characters of `A-Z a-z 0-9 - _ .`.
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let valid = (1..=32).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidId {
                kind: "staff",
                value: value.chars().take(64).collect(),
                expected: "1-32 characters of letters, digits, '-', '_' or '.'",
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_id_impls!(StaffId);
