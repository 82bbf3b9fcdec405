//! `zdn-agent run`: the long-running sensor.
//!
//! ```text
//!  capture workers (threads)                 tokio tasks
//!  ┌───────────────────────────┐  spool   ┌────────────┐  Report stream   ┌───────────┐
//!  │ pcap files / AF_PACKET    │ (SQLite) │ delivery   │ ───────────────▶ │           │
//!  │  → Pipeline: decode,      │ ───────▶ │ (acks →    │                  │ collector │
//!  │    inspect, aggregate,    │          │  delete)   │                  │           │
//!  │    limits, alert log      │          └────────────┘  Heartbeat       │           │
//!  └─────────────▲─────────────┘          ┌────────────┐ ───────────────▶ │           │
//!                │ ArcSwap (lock-free)    │ heartbeats │                  │           │
//!        ┌───────┴──────┐ installed ver.  └────────────┘  Sync stream     │           │
//!        │ set rebuild  │ ◀──────────────── sync::follow ◀──────────────── │           │
//!        └──────────────┘ ◀── SIGHUP (reload local lists, reopen alert log)└───────────┘
//! ```
//!
//! Stopping (SIGTERM/SIGINT): the workers stop and flush their open aggregates into the spool,
//! then delivery gets [`crate::delivery::DRAIN_GRACE`] for outstanding acknowledgements.
//! Whatever is not acknowledged stays in the spool for the next start.

use crate::alerts::AlertLog;
use crate::config::AgentConfig;
use crate::counters::Counters;
use crate::delivery::{self, Uplink};
use crate::history::{Tap, hunt_added};
use crate::live::LiveCapture;
use crate::liveset::SetSources;
use crate::pipeline::{Pipeline, Shared};
use crate::pseudonym::Pseudonymiser;
use crate::ratelimit::RateLimits;
use crate::sighting::Aggregator;
use crate::spool::Spool;
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use zdn_destination_history::History;

/// What the process tells a running agent.
pub struct Controls {
    /// Turns true to stop.
    pub stop: watch::Receiver<bool>,
    /// A new configuration to apply (SIGHUP re-reads the file).
    pub reload: mpsc::Receiver<AgentConfig>,
}

/// Runs the agent until `controls.stop` turns true.
pub async fn run(config: AgentConfig, mut controls: Controls) -> Result<()> {
    config.validate()?;
    create_state_dir(&config.state_dir)?;
    let pseudonyms = Pseudonymiser::load_or_create(&config.secret_path())
        .with_context(|| format!("pseudonym secret {}", config.secret_path().display()))?
        .sharing_addresses(config.share_internal_addresses);
    let spool = Arc::new(Spool::open(&config.spool_path(), config.spool.max_bytes)?);
    let alerts = AlertLog::open(&config.alerts)?.map(Mutex::new);
    let pinned = config.pinned_key().map_err(anyhow::Error::msg)?;
    let mut sources = sources_of(&config, pinned);
    let live = tokio::task::block_in_place(|| sources.build())?;
    tracing::info!(
        version = live.version,
        indicators = live.set.len(),
        "indicator set loaded\n{}",
        live.summary
    );
    if !spool.is_empty() {
        tracing::info!(queued = spool.len(), "sightings from an earlier run are waiting in the spool");
    }
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(Shared {
        set: ArcSwap::from_pointee(live.set),
        set_version: AtomicU64::new(live.version),
        home: config.home(),
        limits: RateLimits::new(
            config.rate_limit.per_indicator_per_minute,
            config.rate_limit.overall_per_second,
        ),
        spool: spool.clone(),
        alerts,
        counters: counters.clone(),
        spooled: Arc::new(tokio::sync::Notify::new()),
        hunt_answers: Mutex::new(Vec::new()),
    });

    // Capture: open every interface first, so a missing privilege fails the start.
    let mut lives = Vec::new();
    for name in &config.capture.interfaces {
        lives.extend(LiveCapture::open(name, &config.capture, &counters)?);
    }
    if !lives.is_empty() {
        let method = config.capture.method.as_str();
        tracing::info!(interfaces = ?config.capture.interfaces, workers = lives.len(), method, "live capture open");
    }
    let history = open_history(&config, &pseudonyms, &counters)?;
    let capture_stop = Arc::new(AtomicBool::new(false));
    let window_ms = i64::from(config.sightings.window_seconds) * 1000;
    let mut next_worker = 0;
    let mut new_pipeline = || {
        let pipeline = Pipeline::new(
            shared.clone(),
            Aggregator::new(window_ms, config.sightings.max_open, pseudonyms.clone()),
        );
        next_worker += 1;
        match &history {
            Some(h) => pipeline.with_history(Tap::new(h.clone(), pseudonyms.clone(), next_worker)),
            None => pipeline,
        }
    };
    // A live capture worker that ends on its own (an error, a panic outside a packet) leaves
    // the agent blind: it is reported here and the agent exits non-zero, so systemd restarts
    // it, rather than heartbeating "healthy" without capture.
    let (worker_failed, mut worker_failures) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut workers = Vec::new();
    if !config.capture.pcap.is_empty() {
        let (files, mut pipeline) = (config.capture.pcap.clone(), new_pipeline());
        let mut record = crate::captures_read::CapturesRead::open(&config.state_dir);
        workers.push(std::thread::Builder::new().name("zdn-pcap".into()).spawn(move || {
            for file in &files {
                if record.was_read(file) {
                    tracing::info!(file = %file.display(), "capture file read before (unchanged): skipped");
                    continue;
                }
                if let Err(e) = crate::capture::read_file(file, |frame| pipeline.frame(&frame)) {
                    tracing::error!(error = %e, "capture file (what was read before the damage is reported)");
                }
                // Its sightings into the spool before it counts as read; aggregation windows
                // end at a file's end.
                pipeline.finish();
                if let Err(e) = record.mark_read(file) {
                    tracing::error!(error = %e, file = %file.display(), "cannot record the capture file as read; a restart reads it again");
                }
            }
            tracing::info!(files = files.len(), "capture files read");
        })?);
    }
    for live in lives {
        let (mut pipeline, stop, failed) = (new_pipeline(), capture_stop.clone(), worker_failed.clone());
        workers.push(std::thread::Builder::new().name("zdn-capture".into()).spawn(move || {
            let ran =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| live.run(&mut pipeline, &stop)));
            let failure = match ran {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the capture worker panicked".to_owned(),
            };
            tracing::error!(error = %failure, "live capture stopped");
            let _ = failed.send(failure);
        })?);
    }
    drop(worker_failed);

    let (tasks_stop_tx, tasks_stop) = watch::channel(false);
    let metrics = match config.metrics.addr().map_err(anyhow::Error::msg)? {
        Some(addr) => Some(crate::metrics::serve(addr, shared.clone(), tasks_stop.clone()).await?),
        None => None,
    };

    // Uplink: delivery, heartbeats, indicator subscription.
    let (installed_tx, mut installed_rx) = watch::channel(live.version);
    let (hunt_tx, mut hunt_rx) = mpsc::unbounded_channel::<zdn_proto::v1::HuntRequest>();
    let mut tasks = tokio::task::JoinSet::new();
    if config.collector.url.is_empty() {
        tracing::warn!("no collector.url: sightings are kept in the spool");
    } else {
        let uplink = Arc::new(Uplink {
            url: config.collector.url.clone(),
            bundle: load_bundle(&config)?,
            batch_size: config.collector.batch_size,
            reconnect_max: Duration::from_secs(config.collector.reconnect_max_seconds),
        });
        let delivered = delivery::run(
            uplink.clone(),
            spool.clone(),
            counters.clone(),
            shared.spooled.clone(),
            tasks_stop.clone(),
        );
        tasks.spawn(delivered);
        let every = Duration::from_secs(config.collector.heartbeat_seconds);
        tasks.spawn(heartbeats(uplink.clone(), shared.clone(), every, tasks_stop.clone()));
        if let (true, Some(pinned)) = (config.indicators.sync, pinned) {
            let installed = config.installed_set_path();
            let stop = tasks_stop.clone();
            let received = crate::sync::Received { installed_version: installed_tx, hunts: hunt_tx };
            tasks.spawn(crate::sync::follow(uplink, pinned, installed, counters.clone(), received, stop));
        }
    }

    // Until stopped: rebuild the live set when a new version is installed or on reload.
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    let mut failure = None;
    loop {
        tokio::select! {
            _ = controls.stop.changed() => break,
            Some(failed) = worker_failures.recv() => {
                failure = Some(failed);
                break;
            }
            changed = installed_rx.changed() => {
                if changed.is_ok() {
                    let before = shared.set.load_full();
                    swap_set(&shared, &sources).await;
                    if let Some(h) = &history {
                        let after = shared.set.load_full();
                        let days = config.history.retention_days;
                        tokio::task::block_in_place(|| hunt_added(h, &before, &after, &shared.spool, days, &counters));
                        shared.spooled.notify_one();
                    }
                }
            }
            Some(new) = controls.reload.recv() => {
                sources = sources_of(&new, pinned);
                if new.capture != config.capture || new.collector != config.collector || new.state_dir != config.state_dir {
                    tracing::warn!("reload applies indicators.local, indicators.allowlists with their warninglist_policy, and reopens the alert log; other changes need a restart");
                }
                if let Some(log) = &shared.alerts
                    && let Err(e) = log.lock().unwrap_or_else(|p| p.into_inner()).reopen()
                {
                    tracing::error!(error = %e, "cannot reopen the alert log");
                }
                swap_set(&shared, &sources).await;
            }
            Some(hunt) = hunt_rx.recv() => {
                if let Some(pinned) = &pinned {
                    let answer = tokio::task::block_in_place(|| {
                        crate::history::answer_hunt(history.as_deref(), pinned, &hunt, &shared.spool, &counters)
                    });
                    shared.hunt_answers.lock().unwrap_or_else(|p| p.into_inner()).push(answer);
                    shared.spooled.notify_one();
                }
            }
            _ = prune.tick() => {
                shared.limits.prune();
                if let Some(h) = &history {
                    expire_history(h, &counters);
                }
            }
        }
    }

    tracing::info!("stopping: flushing open sightings into the spool");
    capture_stop.store(true, Relaxed);
    tokio::task::spawn_blocking(move || workers.into_iter().for_each(|w| drop(w.join()))).await?;
    tasks_stop_tx.send_replace(true);
    while tasks.join_next().await.is_some() {}
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    tracing::info!(
        packets = counters.packets.get(),
        hits = counters.hits.get(),
        spooled = counters.spooled.get(),
        sent = counters.sent.get(),
        held_back = counters.held_back.get(),
        refused_spool_full = counters.spool_full.get(),
        queued = spool.len(),
        "stopped"
    );
    match failure {
        Some(failure) => Err(anyhow::anyhow!(
            "live capture stopped ({failure}): exiting so the service manager restarts the agent"
        )),
        None => Ok(()),
    }
}

/// The destination history, when `history.retention_days` is not 0; with 0, what an earlier
/// run kept is deleted.
fn open_history(
    config: &AgentConfig,
    pseudonyms: &Pseudonymiser,
    counters: &Counters,
) -> Result<Option<Arc<History>>> {
    let keyer = zdn_destination_history::Keyer::new(pseudonyms.history_key());
    let (days, max_bytes) = (config.history.retention_days, config.history.max_mb.saturating_mul(1 << 20));
    let history = History::open(&config.history_dir(), keyer, days, max_bytes)?;
    expire_history(&history, counters);
    if days == 0 {
        tracing::info!("destination history off (history.retention_days = 0): nothing is recorded");
        return Ok(None);
    }
    tracing::info!(
        days,
        max_mb = config.history.max_mb,
        "destination history on: keyed hashes of contacted destinations, for retro-hunts"
    );
    Ok(Some(Arc::new(history)))
}

fn expire_history(history: &History, counters: &Counters) {
    match history.expire(zdn_timestamps::now_ms()) {
        Ok(stats) if stats.evicted > 0 => {
            counters.history_evicted.inc_by(stats.evicted);
            tracing::info!(
                evicted = stats.evicted,
                kept = stats.buckets,
                bytes = stats.bytes,
                "destination history: old hours deleted"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "destination history: expiry failed"),
    }
}

fn sources_of(config: &AgentConfig, pinned: Option<zdn_indicators::signing::VerifyingKey>) -> SetSources {
    SetSources {
        installed: config.installed_set_path(),
        local: config.indicators.local.clone(),
        allowlists: config.indicators.allowlists.clone(),
        warninglist_policy: config.indicators.warninglist_policy.clone(),
        pinned,
    }
}

/// Rebuilds the live set and swaps it in; on error the current set stays.
async fn swap_set(shared: &Shared, sources: &SetSources) {
    match tokio::task::block_in_place(|| sources.build()) {
        Ok(live) => {
            tracing::info!(version = live.version, indicators = live.set.len(), "live indicator set swapped");
            shared.set.store(Arc::new(live.set));
            shared.set_version.store(live.version, Relaxed);
        }
        Err(e) => tracing::error!(error = %e, "indicator set not rebuilt; the current set stays in force"),
    }
}

fn load_bundle(config: &AgentConfig) -> Result<Option<zdn_transport::Bundle>> {
    if config.collector.url.starts_with("http://") {
        return Ok(None);
    }
    Ok(Some(zdn_transport::Bundle::load(&config.collector.identity)?))
}

fn create_state_dir(dir: &std::path::Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("state directory {}", dir.display()))
}

/// Sends a heartbeat every `every` until stopped, and a last one when stopping (so the fleet
/// view shows the final counters).
async fn heartbeats(
    uplink: Arc<Uplink>,
    shared: Arc<Shared>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut host = crate::heartbeat::HostStats::new();
    let mut channel = None;
    let mut interval = tokio::time::interval(every);
    loop {
        let last = tokio::select! {
            _ = interval.tick() => false,
            _ = stop.changed() => true,
        };
        let mut beat = shared.counters.heartbeat();
        (beat.cpu_percent, beat.rss_bytes, beat.load_average_1m) = host.read();
        beat.uptime_seconds = started.elapsed().as_secs();
        beat.indicator_version = shared.set_version.load(Relaxed);
        beat.indicator_count = shared.set.load().len() as u64;
        beat.sightings_queued = shared.spool.len();
        beat.spool_bytes = shared.spool.bytes();
        // Hunt answers ride on heartbeats until one carrying them was delivered.
        beat.hunt_answers = shared.hunt_answers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let answered = beat.hunt_answers.len();
        let send = async {
            if channel.is_none() {
                channel = uplink.connect().await.ok();
            }
            if let Some(ch) = channel.clone() {
                match crate::heartbeat::send(ch, beat).await {
                    Ok(_) => {
                        drop(shared.hunt_answers.lock().unwrap_or_else(|p| p.into_inner()).drain(..answered))
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat not delivered");
                        channel = None;
                    }
                }
            }
        };
        if last {
            let _ = tokio::time::timeout(Duration::from_secs(2), send).await;
            return;
        }
        send.await;
    }
}
