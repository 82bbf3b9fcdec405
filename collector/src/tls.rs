//! The collector's TLS: its credentials, the revocation lists it enforces, and reloading
//! them on SIGHUP.
//!
//! Both listeners (gRPC/HTTP and the console) verify client certificates against the same
//! CA and lists. A list that does not parse as a CRL of our CA fails start-up and
//! `check-config` ([`zdn_transport::revocation`]); on SIGHUP a bad list is refused and the
//! lists in force stay (never fewer revocations because of a typo).

use crate::config::Config;
use anyhow::{Context, Result};
use std::path::PathBuf;
use zdn_transport::Bundle;
use zdn_transport::revocation::{self, Crl};
use zdn_transport::server::{ClientAuth, ReloadableTls, server_config};

/// The TLS configurations in force, replaceable while serving.
pub struct CollectorTls {
    bundle: Bundle,
    lists: Vec<PathBuf>,
    pub grpc: ReloadableTls,
    /// `None` when the console is off.
    pub console: Option<ReloadableTls>,
}

impl CollectorTls {
    pub fn load(config: &Config) -> Result<CollectorTls> {
        let bundle = credentials(config)?;
        let crls = revocation_lists(&bundle, &config.revocation_lists)?;
        let (grpc, console) = configs(&bundle, &crls, config.console.enabled)?;
        Ok(CollectorTls {
            bundle,
            lists: config.revocation_lists.clone(),
            grpc: ReloadableTls::new(grpc),
            console: console.map(ReloadableTls::new),
        })
    }

    /// Reads the revocation lists again and puts them in force for new connections; returns
    /// how many certificates they revoke. On an error nothing changes.
    pub fn reload(&self) -> Result<usize> {
        let crls = revocation_lists(&self.bundle, &self.lists)?;
        let (grpc, console) = configs(&self.bundle, &crls, self.console.is_some())?;
        self.grpc.replace(grpc);
        if let (Some(tls), Some(config)) = (&self.console, console) {
            tls.replace(config);
        }
        Ok(crls.iter().map(|c| c.revoked.len()).sum())
    }
}

/// The collector's own bundle, with the hint to create it.
pub fn credentials(config: &Config) -> Result<Bundle> {
    let identity = config.identity_dir();
    Bundle::load(&identity).with_context(|| {
        format!(
            "loading the collector's credentials from {} (create them with `zdn-collector pki init`)",
            identity.display()
        )
    })
}

/// The configured revocation lists, each checked to be a CRL of the bundle's CA.
pub fn revocation_lists(bundle: &Bundle, lists: &[PathBuf]) -> Result<Vec<Crl>> {
    Ok(revocation::load(lists, &bundle.ca)?)
}

type Configs = (rustls::ServerConfig, Option<rustls::ServerConfig>);

fn configs(bundle: &Bundle, crls: &[Crl], console: bool) -> Result<Configs> {
    let ders: Vec<_> = crls.iter().map(|c| c.der.clone()).collect();
    let grpc = server_config(bundle, ders.clone(), ClientAuth::Required)?;
    // The console: a client certificate is optional (see `console::listener`), checked alike.
    let console = console.then(|| server_config(bundle, ders, ClientAuth::Optional)).transpose()?;
    Ok((grpc, console))
}
