//! Signed indicator sets: the CERT signs what it publishes, agents accept only what verifies
//! against the key they pinned, and a set on disk is replaced only by a newer, plausible one.
//!
//! A signed set is the compiled form (`set::compiled`, which carries the version) in an
//! envelope:
//!
//! ```text
//! magic "ZDNSIG\0\3" | Ed25519 public key (32) | Ed25519 signature (64) | compiled set
//! ```
//!
//! The signer is named by its whole public key, the 64 hex digits `pki init` prints and agents
//! pin: one form in every message. Version-2 envelopes (which named an 8-byte key id, the
//! first bytes of the key's SHA-256) are still read, so an agent can take sets from a
//! collector not yet upgraded.
//!
//! The signature covers a domain-separation prefix and the SHA-256 of the whole compiled set,
//! so content and version cannot be changed apart from it. Ed25519 via `ed25519-dalek` (RustCrypto, audited);
//! keys are 32-byte seeds in a file of mode 0600.

use crate::set::IndicatorSet;
use crate::set::compiled::{self, CompiledError};
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use thiserror::Error;

const MAGIC: &[u8; 8] = b"ZDNSIG\x00\x03";
const MAGIC_V2: &[u8; 8] = b"ZDNSIG\x00\x02";
const CONTEXT: &[u8] = b"zdn indicator set v2\x00";

/// What is signed: a domain-separation prefix and the SHA-256 of the compiled set. Hashing
/// first keeps verification of a 38 MB set fast (SHA-256 runs on the CPU's SHA extensions;
/// Ed25519 alone would hash the whole set with SHA-512 in software).
fn signed_message(body: &[u8]) -> Vec<u8> {
    [CONTEXT, Sha256::digest(body).as_slice()].concat()
}
const HEAD: usize = 8 + 32 + 64;
const HEAD_V2: usize = 8 + 8 + 64;

/// An envelope taken apart: who signed it, the signature, the compiled set.
struct Envelope<'a> {
    signed_by: SignedBy,
    signature: [u8; 64],
    body: &'a [u8],
}

enum SignedBy {
    Key([u8; 32]),
    /// A version-2 envelope's key id.
    KeyId([u8; 8]),
}

impl Envelope<'_> {
    fn parse(bytes: &[u8]) -> Option<Envelope<'_>> {
        let (signed_by, head) = if bytes.starts_with(MAGIC) && bytes.len() >= HEAD {
            (SignedBy::Key(bytes[8..40].try_into().ok()?), HEAD)
        } else if bytes.starts_with(MAGIC_V2) && bytes.len() >= HEAD_V2 {
            (SignedBy::KeyId(bytes[8..16].try_into().ok()?), HEAD_V2)
        } else {
            return None;
        };
        Some(Envelope { signed_by, signature: bytes[head - 64..head].try_into().ok()?, body: &bytes[head..] })
    }

    /// Whether `pinned` signed it, or the error naming both keys.
    fn check_signer(&self, pinned: &VerifyingKey) -> Result<(), SignedError> {
        let pinned_hex = hex::encode(pinned.as_bytes());
        match self.signed_by {
            SignedBy::Key(key) if &key == pinned.as_bytes() => Ok(()),
            SignedBy::KeyId(id) if id == key_id(pinned) => Ok(()),
            SignedBy::Key(key) => Err(SignedError::WrongKey { found: hex::encode(key), pinned: pinned_hex }),
            SignedBy::KeyId(id) => Err(SignedError::WrongKey {
                found: format!("with id {} (a version-2 set)", hex::encode(id)),
                pinned: pinned_hex,
            }),
        }
    }
}

#[derive(Debug, Error)]
pub enum SignedError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("not a signed indicator set (unsigned sets are refused when a key is pinned)")]
    Unsigned,
    #[error("signed by key {found}, but the pinned key is {pinned}")]
    WrongKey { found: String, pinned: String },
    #[error("signature does not verify: the set was altered or not signed by the pinned key")]
    BadSignature,
    #[error("bad public key {0:?}: expected 64 hex digits")]
    BadKey(String),
    #[error(transparent)]
    Compiled(#[from] CompiledError),
    #[error("version {offered} is not newer than the installed version {installed}")]
    NotNewer { offered: u64, installed: u64 },
    #[error(
        "the new set has {offered} indicators where the installed one has {installed}: refusing an implausible shrink (use --force)"
    )]
    Shrinks { offered: usize, installed: usize },
    #[error("the new set is empty: refusing it (use --force)")]
    Empty,
}

/// The CERT's publishing key.
pub struct Publisher {
    key: SigningKey,
}

impl Publisher {
    /// Loads the key at `path`.
    pub fn load(path: &Path) -> Result<Publisher, SignedError> {
        let io = |source| SignedError::Io { path: path.display().to_string(), source };
        let bytes = std::fs::read(path).map_err(io)?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            io(std::io::Error::other(format!("a signing key is 32 bytes, found {}", bytes.len())))
        })?;
        Ok(Publisher { key: SigningKey::from_bytes(&seed) })
    }

    /// Loads the key at `path`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Publisher, SignedError> {
        let io = |source| SignedError::Io { path: path.display().to_string(), source };
        match std::fs::read(path) {
            Ok(_) => Publisher::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let seed: [u8; 32] = rand::random();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io)?;
                file.write_all(&seed).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Publisher { key: SigningKey::from_bytes(&seed) })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public key to pin on agents, as 64 hex digits.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Signs `message` for `context` (a label naming what it is, so a signature over one kind
    /// of message is never valid as another's: a set's signature cannot pass as a hunt's).
    pub fn sign_message(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.key.sign(&[context, b"\x00", message].concat()).to_bytes()
    }

    /// Compiles and signs `set` as `version`.
    pub fn sign(&self, set: &IndicatorSet, version: u64) -> Vec<u8> {
        let body = compiled::encode(set, version);
        let signature = self.key.sign(&signed_message(&body));
        let mut out = Vec::with_capacity(HEAD + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(self.key.verifying_key().as_bytes());
        out.extend_from_slice(&signature.to_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// Whether `signature` is the pinned key's over `message` for `context` (see
/// [`Publisher::sign_message`]).
pub fn verify_message(pinned: &VerifyingKey, context: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::from_slice(signature) else { return false };
    pinned.verify(&[context, b"\x00", message].concat(), &signature).is_ok()
}

/// The signature in a signed envelope, which a delta carries so the agent can rebuild the
/// envelope of the set the delta produces (see `set::delta`).
pub fn signature_of(envelope: &[u8]) -> Option<[u8; 64]> {
    Envelope::parse(envelope).map(|e| e.signature)
}

/// The envelope of a compiled set `body` with `signature`, as if signed by `pinned`'s holder;
/// [`verify`] and [`install`] then accept it only if the signature really is over `body`.
pub fn assemble(pinned: &VerifyingKey, signature: &[u8], body: &[u8]) -> Result<Vec<u8>, SignedError> {
    if signature.len() != 64 {
        return Err(SignedError::BadSignature);
    }
    Ok([MAGIC.as_slice(), pinned.as_bytes(), signature, body].concat())
}

/// Parses a pinned public key (64 hex digits).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SignedError> {
    let bad = || SignedError::BadKey(text.to_owned());
    let bytes: [u8; 32] = hex::decode(text.trim()).map_err(|_| bad())?.try_into().map_err(|_| bad())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

/// A version-2 envelope's name for a key.
fn key_id(key: &VerifyingKey) -> [u8; 8] {
    Sha256::digest(key.as_bytes())[..8].try_into().expect("8 bytes")
}

/// Whether `bytes` are a signed envelope.
pub fn is_signed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_V2)
}

/// Verifies a signed set against the pinned key and decodes it; returns it with its version.
pub fn verify(envelope: &[u8], pinned: &VerifyingKey) -> Result<(IndicatorSet, u64), SignedError> {
    let parsed = Envelope::parse(envelope).ok_or(SignedError::Unsigned)?;
    parsed.check_signer(pinned)?;
    let signature = Signature::from_bytes(&parsed.signature);
    let body = parsed.body;
    // The signature check (SHA-256 over the whole body, then Ed25519) and the decoding take
    // about as long as each other, so they run side by side. Decoding bytes not yet verified
    // is safe: the decoder is bounded and fuzzed for damaged files, and its result is dropped
    // unless the signature verifies.
    let (checked, decoded) = std::thread::scope(|scope| {
        let check = scope.spawn(|| pinned.verify(&signed_message(body), &signature));
        let decoded = compiled::decode(body);
        (check.join(), decoded)
    });
    match checked {
        Ok(Ok(())) => Ok(decoded?),
        _ => Err(SignedError::BadSignature),
    }
}

/// Installs a signed set at `installed` (the last good set) if it verifies, is newer than the
/// installed one, and does not shrink it implausibly (below half) unless `force`. On any
/// refusal the installed file is left as it was. Returns the new set and its version.
pub fn install(
    envelope: &[u8],
    pinned: &VerifyingKey,
    installed: &Path,
    force: bool,
) -> Result<(IndicatorSet, u64), SignedError> {
    let (set, version) = verify(envelope, pinned)?;
    if installed.exists() {
        let current = std::fs::read(installed)
            .map_err(|source| SignedError::Io { path: installed.display().to_string(), source })?;
        let (old, old_version) = verify(&current, pinned)?;
        if version <= old_version {
            return Err(SignedError::NotNewer { offered: version, installed: old_version });
        }
        if !force && set.len() < old.len() / 2 {
            return Err(SignedError::Shrinks { offered: set.len(), installed: old.len() });
        }
    }
    if set.is_empty() && !force {
        return Err(SignedError::Empty);
    }
    let io = |source| SignedError::Io { path: installed.display().to_string(), source };
    let tmp = installed.with_extension("new");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(envelope).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, installed).map_err(io)?;
    Ok((set, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::parse_plain;

    fn set(text: &str) -> IndicatorSet {
        IndicatorSet::new(parse_plain("t", text).indicators)
    }

    #[test]
    fn only_newer_plausible_sets_signed_by_the_pinned_key_are_installed() {
        let dir = tempfile::tempdir().unwrap();
        let cert = Publisher::load_or_create(&dir.path().join("publish.key")).unwrap();
        let again = Publisher::load_or_create(&dir.path().join("publish.key")).unwrap();
        assert_eq!(cert.public_hex(), again.public_hex());
        let pinned = parse_public_key(&cert.public_hex()).unwrap();
        let installed = dir.path().join("indicators.zdn");

        let v1 = cert.sign(&set("evil.example\n203.0.113.9\n198.51.100.1:443\nbad.example\n"), 1);
        let (s, version) = install(&v1, &pinned, &installed, false).unwrap();
        assert_eq!((s.len(), version), (4, 1));

        // Tampered: one byte of the body changed after signing.
        let mut tampered = cert.sign(&set("evil.example\n203.0.113.9\n198.51.100.1:443\nworse.example\n"), 2);
        let last = tampered.len() - 10;
        tampered[last] ^= 1;
        assert!(matches!(install(&tampered, &pinned, &installed, false), Err(SignedError::BadSignature)));
        // Unsigned, other key, older, shrinking: all refused.
        let unsigned = compiled::encode(&set("evil.example\n"), 3);
        assert!(matches!(install(&unsigned, &pinned, &installed, false), Err(SignedError::Unsigned)));
        let rogue = Publisher::load_or_create(&dir.path().join("rogue.key")).unwrap();
        let foreign = rogue.sign(&set("evil.example\n"), 4);
        match install(&foreign, &pinned, &installed, false) {
            // Both keys in the form `pki init` prints and agents pin.
            Err(SignedError::WrongKey { found, pinned }) => {
                assert_eq!((found, pinned), (rogue.public_hex(), cert.public_hex()));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(install(&v1, &pinned, &installed, false), Err(SignedError::NotNewer { .. })));
        let tiny = cert.sign(&set("evil.example\n"), 5);
        assert!(matches!(install(&tiny, &pinned, &installed, false), Err(SignedError::Shrinks { .. })));

        // After every refusal the last good set is still the one in force.
        let (kept, kept_version) = verify(&std::fs::read(&installed).unwrap(), &pinned).unwrap();
        assert_eq!(kept_version, 1);
        assert!(kept.match_domain("www.bad.example").is_some());

        // An envelope rebuilt from its body and signature verifies; with another body it does not.
        let signature = signature_of(&v1).unwrap();
        let body = &v1[HEAD..];
        assert_eq!(assemble(&pinned, &signature, body).unwrap(), v1);
        let other = compiled::encode(
            &set("evil.example
"),
            1,
        );
        let forged = assemble(&pinned, &signature, &other).unwrap();
        assert!(matches!(verify(&forged, &pinned), Err(SignedError::BadSignature)));
        assert!(matches!(assemble(&pinned, &signature[..10], body), Err(SignedError::BadSignature)));
        // A version-2 envelope (key id instead of key) is still read.
        let v2 = [MAGIC_V2.as_slice(), &key_id(&pinned), &signature, body].concat();
        assert_eq!(verify(&v2, &pinned).unwrap().1, 1);
        let v2_foreign = [MAGIC_V2.as_slice(), &[0u8; 8], &signature, body].concat();
        assert!(matches!(verify(&v2_foreign, &pinned), Err(SignedError::WrongKey { .. })));

        // Forced, the shrink goes through; a bad public key is a clear error.
        assert_eq!(install(&tiny, &pinned, &installed, true).unwrap().1, 5);
        assert!(matches!(parse_public_key("abc"), Err(SignedError::BadKey(_))));
    }
}
