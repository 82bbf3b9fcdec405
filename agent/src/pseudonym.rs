//! Keyed pseudonyms for internal hosts.
//!
//! The collector must be able to tell "the same host hit three indicators" without learning
//! which host: each internal address becomes `h-` + 16 hex digits of HMAC-SHA256(secret, address).
//! The secret is generated on first use, kept in a file only the agent can read, and never sent
//! anywhere, so only the participant can map a pseudonym back (by recomputing it for its own
//! addresses).

use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

const SECRET_LEN: usize = 32;

#[derive(Clone)]
pub struct Pseudonymiser {
    secret: [u8; SECRET_LEN],
    /// The participant opted in to sharing internal addresses instead of pseudonyms.
    share_addresses: bool,
}

impl Pseudonymiser {
    /// A pseudonymiser with a fresh random secret that lives only as long as the process.
    pub fn ephemeral() -> Pseudonymiser {
        Pseudonymiser { secret: rand::random(), share_addresses: false }
    }

    /// Loads the secret from `path`, creating it (mode 0600) with a fresh random secret if the
    /// file does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<Pseudonymiser> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let secret: [u8; SECRET_LEN] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::other(format!(
                        "{}: pseudonym secret must be exactly {SECRET_LEN} bytes, found {}",
                        path.display(),
                        bytes.len()
                    ))
                })?;
                Ok(Pseudonymiser { secret, share_addresses: false })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; SECRET_LEN] = rand::random();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path)?;
                file.write_all(&secret)?;
                file.sync_all()?;
                Ok(Pseudonymiser { secret, share_addresses: false })
            }
            Err(e) => Err(e),
        }
    }

    pub fn sharing_addresses(mut self, share: bool) -> Pseudonymiser {
        self.share_addresses = share;
        self
    }

    /// What leaves the institution in place of `host`.
    pub fn pseudonym(&self, host: IpAddr) -> String {
        if self.share_addresses {
            return host.to_string();
        }
        Self::pseudonym_text(self.pseudonym_bits(host))
    }

    /// The pseudonym of `host` as a number (what the destination history stores; it never
    /// holds an address, even when the participant shares them).
    pub fn pseudonym_bits(&self, host: IpAddr) -> u64 {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        match host.to_canonical() {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        u64::from_be_bytes(mac.finalize().into_bytes()[..8].try_into().expect("8 bytes"))
    }

    /// The pseudonym `h-<16 hex>` of [`Pseudonymiser::pseudonym_bits`].
    pub fn pseudonym_text(bits: u64) -> String {
        format!("h-{bits:016x}")
    }

    /// The destination history's key: derived from the same secret (one secret to guard, to
    /// rotate and to destroy), under its own label so neither key tells anything of the other.
    pub fn history_key(&self) -> [u8; 16] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(b"zdn destination history v1");
        mac.finalize().into_bytes()[..16].try_into().expect("16 bytes")
    }

    /// The internal address behind `pseudonym`, searched among the addresses of `networks`
    /// (the participant's `home_net`). A keyed hash cannot be inverted, only recomputed, so
    /// the search is bounded: networks larger than [`MAX_RESOLVE_ADDRESSES`] in total are
    /// refused rather than searched for minutes.
    pub fn resolve(&self, pseudonym: &str, networks: &[IpNet]) -> Result<Option<IpAddr>, ResolveError> {
        let total: u128 =
            networks.iter().map(|n| 1u128 << (n.max_prefix_len() - n.prefix_len()).min(127)).sum();
        if total > MAX_RESOLVE_ADDRESSES {
            return Err(ResolveError::TooLarge { addresses: total });
        }
        if !pseudonym.starts_with("h-") || pseudonym.len() != 18 {
            return Err(ResolveError::NotAPseudonym(pseudonym.to_owned()));
        }
        let found = networks
            .iter()
            .flat_map(|n| n.hosts().chain([n.network(), n.broadcast()]))
            .find(|ip| self.pseudonym(*ip) == pseudonym);
        Ok(found)
    }
}

/// The most addresses `resolve` searches (a /8 of IPv4 takes seconds; more is refused).
pub const MAX_RESOLVE_ADDRESSES: u128 = 1 << 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("{0:?} is not a pseudonym (h- and 16 hex digits)")]
    NotAPseudonym(String),
    #[error(
        "the networks hold {addresses} addresses; search at most {MAX_RESOLVE_ADDRESSES} (narrow --home-net)"
    )]
    TooLarge { addresses: u128 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_per_secret_and_hide_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let a = Pseudonymiser::load_or_create(&path).unwrap();
        let b = Pseudonymiser::load_or_create(&path).unwrap();
        let host: IpAddr = "10.1.2.3".parse().unwrap();
        let p = a.pseudonym(host);
        assert_eq!(p, b.pseudonym(host));
        assert!(p.starts_with("h-") && p.len() == 18 && !p.contains("10.1"));
        assert_ne!(p, a.pseudonym("10.1.2.4".parse().unwrap()));
        assert_ne!(p, Pseudonymiser::ephemeral().pseudonym(host));
        assert_eq!(a.sharing_addresses(true).pseudonym(host), "10.1.2.3");
    }

    #[test]
    fn resolves_pseudonyms_within_the_home_networks_only() {
        let p = Pseudonymiser::ephemeral();
        let host: IpAddr = "10.20.3.77".parse().unwrap();
        let home: Vec<IpNet> = vec!["192.168.0.0/24".parse().unwrap(), "10.20.0.0/16".parse().unwrap()];
        assert_eq!(p.resolve(&p.pseudonym(host), &home), Ok(Some(host)));
        let elsewhere = p.pseudonym("172.16.0.1".parse().unwrap());
        assert_eq!(p.resolve(&elsewhere, &home), Ok(None));
        assert!(matches!(p.resolve("10.20.3.77", &home), Err(ResolveError::NotAPseudonym(_))));
        let huge = vec!["10.0.0.0/7".parse().unwrap()];
        assert!(matches!(p.resolve(&elsewhere, &huge), Err(ResolveError::TooLarge { .. })));
    }

    #[test]
    fn refuses_a_damaged_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, b"short").unwrap();
        let err = Pseudonymiser::load_or_create(&path).err().unwrap();
        assert!(err.to_string().contains("exactly 32 bytes"), "{err}");
    }
}
