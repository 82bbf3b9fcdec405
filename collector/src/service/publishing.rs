//! Publishing: the configured sources (with the warninglists applied under their policies) and
//! the imports, compiled and signed with the publishing key as one version — at start, and
//! again on each [`Publishing::republish`] (SIGHUP) and import.
//!
//! Indicators marked as false positives are left out of every version published after the
//! mark. A mark itself ([`Publishing::withdraw`]) does not load the sources again: the next
//! version is the current one without the indicator, which is also the delta agents receive.

use super::indicator::Published;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;
use zdn_indicators::set::delta::Change;
use zdn_indicators::signing::Publisher;
use zdn_indicators::{Allowlists, LoadError, Policies, Screened};

/// What each version is built from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub indicators: Vec<PathBuf>,
    pub allowlists: Vec<PathBuf>,
    pub policies: Policies,
    /// Sources imported with `zdn indicators import`: one directory per import, holding the
    /// file or directory that was imported (see `super::import`).
    pub imports: PathBuf,
    /// The bundles the TAXII sources keep (see `crate::taxii::source`); published once they
    /// exist.
    pub taxii: Vec<PathBuf>,
}

impl Sources {
    pub fn allowlists(&self) -> Allowlists<'_> {
        Allowlists { paths: &self.allowlists, policies: &self.policies }
    }

    /// Loads everything and leaves out what analysts withdrew, logging each step (with 1.85M
    /// trails and every warninglist this takes seconds, not minutes).
    fn screen(&self, withdrawn: &BTreeSet<String>) -> Result<Screened, LoadError> {
        let started = Instant::now();
        let paths = self.paths();
        tracing::info!(
            sources = paths.len(),
            allowlists = self.allowlists.len(),
            "loading indicator sources"
        );
        let mut screened = Screened::load(&paths, self.allowlists(), None)?;
        let left_out = screened.retain(|i| !withdrawn.contains(&i.value));
        tracing::info!(
            left_out_as_false_positives = left_out,
            load_seconds = started.elapsed().as_secs_f64(),
            "indicator sources loaded"
        );
        Ok(screened)
    }

    /// The configured sources, then each import (the one entry of each import's directory),
    /// then the TAXII sources' bundles that exist.
    fn paths(&self) -> Vec<PathBuf> {
        let mut all = self.indicators.clone();
        let mut imported: Vec<PathBuf> = std::fs::read_dir(&self.imports)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_type().is_ok_and(|t| t.is_dir()) && !e.file_name().to_string_lossy().starts_with('.')
            })
            .filter_map(|e| std::fs::read_dir(e.path()).ok()?.flatten().next().map(|inner| inner.path()))
            .collect();
        imported.sort();
        all.extend(imported);
        all.extend(self.taxii.iter().filter(|p| p.exists()).cloned());
        all
    }
}

/// The published set and how to publish the next version.
pub struct Publishing {
    publisher: Publisher,
    sources: Sources,
    current: watch::Sender<Arc<Published>>,
    /// Indicator values marked as false positives; the lock also makes rebuilds one at a time.
    withdrawn: Mutex<BTreeSet<String>>,
}

impl Publishing {
    /// Loads the sources and publishes them as the first version (the load time in seconds:
    /// versions only grow, also across restarts).
    pub fn start(
        publisher: Publisher,
        sources: Sources,
        withdrawn: Vec<String>,
    ) -> Result<Publishing, LoadError> {
        let withdrawn: BTreeSet<String> = withdrawn.into_iter().collect();
        let started = Instant::now();
        let built = sources.screen(&withdrawn)?.build();
        let version = u64::try_from(zdn_timestamps::now_ms() / 1000).unwrap_or(1);
        let summary = built.summary();
        let current = watch::Sender::new(Arc::new(Published::new(version, built.set, &publisher)));
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(version, seconds, %summary, "indicator set built and signed for publishing");
        Ok(Publishing { publisher, sources, current, withdrawn: Mutex::new(withdrawn) })
    }

    /// Loads the sources again and publishes them as the next version, pushed at once to every
    /// subscribed agent. On a load error the published version stays. Blocking (call off the
    /// async threads).
    pub fn republish(&self) -> Result<u64, LoadError> {
        let withdrawn = self.withdrawn.lock().unwrap_or_else(|p| p.into_inner());
        self.publish(&withdrawn)
    }

    /// Withdraws `indicator` (a false positive): publishes the current set without it, as a
    /// delta (the sources are not loaded again). Blocking.
    pub fn withdraw(&self, indicator: &str) -> u64 {
        let mut withdrawn = self.withdrawn.lock().unwrap_or_else(|p| p.into_inner());
        withdrawn.insert(indicator.to_owned());
        let previous = self.current.borrow().clone();
        let removed = previous.holding(indicator);
        if removed.is_empty() {
            return previous.version;
        }
        let version = self.next_version(&previous);
        let change = Change { added: Vec::new(), removed };
        self.current.send_replace(Arc::new(previous.changed(version, &change, &self.publisher)));
        tracing::info!(version, indicator, "published a new indicator set version without a false positive");
        version
    }

    /// Where imports live, and the allowlists an import is checked against.
    pub fn imports(&self) -> (&Path, Allowlists<'_>) {
        (&self.sources.imports, self.sources.allowlists())
    }

    /// Runs `change` (which adds or replaces an import) and publishes the result, one rebuild
    /// at a time; if publishing fails, `undo` puts the previous state back. Blocking.
    pub fn with_import(
        &self,
        change: impl FnOnce() -> std::io::Result<()>,
        undo: impl FnOnce(),
    ) -> Result<u64, String> {
        let withdrawn = self.withdrawn.lock().unwrap_or_else(|p| p.into_inner());
        change().map_err(|e| format!("storing the import: {e}"))?;
        self.publish(&withdrawn).map_err(|e| {
            undo();
            e.to_string()
        })
    }

    fn publish(&self, withdrawn: &BTreeSet<String>) -> Result<u64, LoadError> {
        let started = Instant::now();
        let screened = self.sources.screen(withdrawn)?;
        let previous = self.current.borrow().clone();
        let version = self.next_version(&previous);
        let (next, summary) = previous.next(version, screened, &self.publisher);
        self.current.send_replace(Arc::new(next));
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(version, seconds, %summary, "published a new indicator set version");
        Ok(version)
    }

    /// Versions are the publishing time in seconds, and always grow.
    fn next_version(&self, previous: &Published) -> u64 {
        u64::try_from(zdn_timestamps::now_ms() / 1000).unwrap_or(1).max(previous.version + 1)
    }

    pub fn version(&self) -> u64 {
        self.current.borrow().version
    }

    /// Signs an analyst's hunt request with the publishing key (the key agents pin).
    pub fn sign_hunt(&self, hunt: &mut zdn_proto::v1::HuntRequest) {
        zdn_proto::hunt::sign(&self.publisher, hunt);
    }

    /// The version published now.
    pub fn current(&self) -> Arc<Published> {
        self.current.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.current.subscribe()
    }
}
