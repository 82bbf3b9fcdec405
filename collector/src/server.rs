//! Starting and stopping a collector: store, TLS listener, and the gRPC services with the
//! standard health and reflection services beside them.

use crate::config::Config;
use crate::service::Shared;
use crate::service::analyst::Analyst;
use crate::service::fleet::Fleet;
use crate::service::indicator::Indicators;
use crate::service::publishing::Publishing;
use crate::service::sighting::Ingest;
use crate::tls::CollectorTls;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use zdn_proto::v1::{
    analyst_service_server::AnalystServiceServer, fleet_service_server::FleetServiceServer,
    indicator_service_server::IndicatorServiceServer, sighting_service_server::SightingServiceServer,
};
use zdn_transport::server::{ListenerStats, Security, incoming};

/// A collector serving in the background.
pub struct RunningCollector {
    pub addr: SocketAddr,
    /// The web console's address, when it is enabled.
    pub console: Option<SocketAddr>,
    /// The metrics endpoint's address, when `metrics.listen` is set.
    pub metrics: Option<SocketAddr>,
    pub stats: Arc<ListenerStats>,
    /// What the alert sinks did; `None` when no sink is configured.
    pub alerts: Option<Arc<crate::alerts::AlertStats>>,
    publishing: Arc<Publishing>,
    /// `None` in insecure-dev mode.
    tls: Option<Arc<CollectorTls>>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

/// How long a stop waits for in-flight calls before it cuts them off.
const GRACE: Duration = Duration::from_secs(10);

impl RunningCollector {
    /// Stops accepting, lets in-flight calls finish, and waits for the server to end.
    pub async fn stop(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        match tokio::time::timeout(GRACE, &mut self.task).await {
            Ok(joined) => Ok(joined??),
            Err(_) => {
                tracing::warn!("calls still running after {GRACE:?}; closing them");
                self.task.abort();
                Ok(())
            }
        }
    }

    /// Loads the indicator sources again and publishes them as a new version, pushed to every
    /// subscribed agent. On an error the published version stays.
    pub async fn republish_indicators(&self) -> Result<u64> {
        let publishing = self.publishing.clone();
        Ok(tokio::task::spawn_blocking(move || publishing.republish()).await??)
    }

    /// The version of the indicator set published now.
    pub fn indicator_version(&self) -> u64 {
        self.publishing.version()
    }

    /// Reads the revocation lists again and enforces them on new connections; returns how
    /// many certificates they revoke. On an error the lists in force stay.
    pub async fn reload_revocation_lists(&self) -> Result<usize> {
        let Some(tls) = self.tls.clone() else { return Ok(0) };
        tokio::task::spawn_blocking(move || tls.reload()).await?
    }

    /// SIGHUP: the revocation lists are read again, and the indicator sources published again
    /// as a new version; each keeps what is in force if its reload fails.
    async fn reload(&self) {
        match self.reload_revocation_lists().await {
            Ok(revoked) => tracing::info!(revoked, "SIGHUP: revocation lists reloaded"),
            Err(e) => {
                tracing::error!(error = %zdn_telemetry::error_text(e.as_ref()), "SIGHUP: revocation lists not reloaded; the lists in force stay")
            }
        }
        match self.republish_indicators().await {
            Ok(version) => tracing::info!(version, "SIGHUP: indicators published"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: indicators not republished; the published version stays")
            }
        }
    }

    /// Serves until the process gets SIGINT or SIGTERM, then stops gracefully. SIGHUP reloads
    /// (see [`Self::reload`]).
    pub async fn serve_until_signal(self) -> Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let (mut term, mut hup) = (signal(SignalKind::terminate())?, signal(SignalKind::hangup())?);
        crate::readiness::ready(&format!(
            "serving on {}, indicator set version {}",
            self.addr,
            self.publishing.version()
        ));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => self.reload().await,
            }
        }
        tracing::info!("shutting down");
        crate::readiness::stopping();
        self.stop().await
    }
}

/// Events buffered per `WatchCorrelations` subscriber before it counts as lagging.
const EVENT_BUFFER: usize = 1024;

/// Opens the store, binds the listener and starts serving.
pub async fn start(config: Config, insecure_dev: bool) -> Result<RunningCollector> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let rule = config.correlation_rule();
    let location = config.store_location()?;
    // Off the async threads: opening may wait on the network (PostgreSQL) and the disk.
    let store = {
        let location = location.clone();
        tokio::task::spawn_blocking(move || crate::store::open(&location, rule)).await?
    }
    .with_context(|| format!("opening the store ({location})"))?;
    tracing::info!(store = %location, "store open");

    // In insecure-dev mode no TLS at all, and no console: a console without TLS would put
    // session cookies on the wire.
    let tls = if insecure_dev {
        tracing::warn!(
            "=== INSECURE DEV MODE: plain TCP, no authentication, every caller is admin. Never in production. ==="
        );
        if config.console.enabled {
            tracing::warn!("the web console needs TLS; it is off in insecure-dev mode");
        }
        None
    } else {
        Some(Arc::new(CollectorTls::load(&config)?))
    };
    let security = tls.as_ref().map_or(Security::InsecureDev, |t| Security::MutualTls(t.grpc.clone()));
    let console_tls = tls.as_ref().and_then(|t| t.console.clone());

    let publisher = config.publisher()?;
    tracing::info!(public_key = %publisher.public_hex(), "indicator sets are signed with this key; pin it on agents");
    let withdrawn = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.false_positives()).await??
    };
    crate::readiness::status("loading indicator sources and warninglists");
    let sources = config.publishing_sources();
    let publishing = tokio::task::spawn_blocking(move || Publishing::start(publisher, sources, withdrawn));
    let publishing = Arc::new(publishing.await??);

    let events = broadcast::channel(EVENT_BUFFER).0;
    let events_from_store = {
        let (store, events) = (store.clone(), events.clone());
        tokio::task::spawn_blocking(move || store.distribute_events(events)).await??
    };
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(ListenerStats::default());
    let max_message = config.max_message_bytes;
    let (shutdown, stop_signal) = watch::channel(false);
    let shared = Shared {
        store,
        ingest_limits: Arc::new(crate::service::ingest_limit::IngestLimits::new(
            config.ingest.per_agent_sightings_per_second,
            config.ingest.per_agent_burst,
        )),
        config: Arc::new(config),
        events,
        events_from_store,
        publishing: publishing.clone(),
        shutdown: stop_signal.clone(),
        metrics: Arc::new(crate::metrics::Metrics::new()),
        hunts: Arc::new(crate::service::hunt::Hunts::default()),
    };

    crate::retention::start(shared.store.clone(), shared.config.retention, stop_signal.clone());
    crate::sweep::start(shared.store.clone(), shared.events.clone(), !events_from_store, stop_signal.clone());
    let taxii_sources = shared
        .config
        .taxii
        .sources
        .iter()
        .map(|c| crate::taxii::source::Source::new(c, &shared.config.data_dir))
        .collect::<Result<Vec<_>, _>>()?;
    crate::taxii::poll::start(taxii_sources, publishing.clone(), shared.metrics.clone(), stop_signal.clone());
    let alert_stats = crate::alerts::start(&shared.config.alerts, &shared.events, stop_signal.clone())
        .context("starting the alert sinks")?;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<SightingServiceServer<Ingest>>().await;
    health_reporter.set_serving::<AnalystServiceServer<Analyst>>().await;
    health_reporter.set_serving::<FleetServiceServer<Fleet>>().await;
    health_reporter.set_serving::<IndicatorServiceServer<Indicators>>().await;
    // Reflection in both versions: v1 for current grpcurl and Postman, v1alpha for the older
    // ones (and tools built on them), which know no other.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(zdn_proto::DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (reflection_v1, reflection_v1alpha) = (reflection().build_v1()?, reflection().build_v1alpha()?);

    let grpc = tonic::service::Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            SightingServiceServer::new(Ingest { shared: shared.clone() })
                .max_decoding_message_size(max_message),
        )
        .add_service(
            AnalystServiceServer::new(Analyst { shared: shared.clone() })
                .max_decoding_message_size(max_message),
        )
        .add_service(
            FleetServiceServer::new(Fleet { shared: shared.clone() }).max_decoding_message_size(max_message),
        )
        .add_service(
            IndicatorServiceServer::new(Indicators {
                published: publishing.subscribe(),
                hunts: shared.hunts.subscribe(),
                shutdown: stop_signal.clone(),
            })
            .max_decoding_message_size(max_message),
        );
    // The HTTP/JSON API shares the port and the TLS identity check (see `http`); HTTP/1.1 is
    // accepted for it, gRPC stays on HTTP/2.
    let api = crate::http::router(Arc::new(Analyst { shared: shared.clone() }))
        .merge(crate::taxii::api::router(Arc::new(Analyst { shared: shared.clone() })));
    let routes = tonic::service::Routes::from(grpc.into_axum_router().merge(api));
    let router = tonic::transport::Server::builder().accept_http1(true).add_routes(routes);
    let console = match console_tls {
        Some(tls) => Some(
            crate::console::start(shared.clone(), shared.config.console.listen, tls, stop_signal.clone())
                .await?,
        ),
        None => None,
    };
    let metrics = match shared.config.metrics.addr()? {
        Some(addr) => {
            let published = shared.publishing.subscribe();
            let sources = crate::metrics::Sources {
                store: shared.store.clone(),
                stale_ms: shared.config.stale_after_ms(),
                published: move || {
                    let now = published.borrow();
                    (now.version, now.indicator_count())
                },
                events: shared.events.subscribe(),
            };
            Some(crate::metrics::serve(addr, shared.metrics.clone(), sources, stop_signal.clone()).await?)
        }
        None => None,
    };
    let conns = incoming(listener, security, stats.clone());
    let task =
        tokio::spawn(router.serve_with_incoming_shutdown(conns, crate::shutdown::stopping(stop_signal)));
    tracing::info!(%addr, "collector listening");
    Ok(RunningCollector {
        addr,
        console,
        metrics,
        stats,
        alerts: alert_stats,
        publishing,
        tls,
        shutdown,
        task,
    })
}
