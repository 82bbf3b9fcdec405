//! `collector.toml`: every key, its default, and the checks `check-config` runs.
//!
//! ```toml
//! listen = "127.0.0.1:7443"            # address of the gRPC API (agents and analysts)
//! data_dir = "/var/lib/zdn-collector"  # SQLite database and, by default, the PKI
//! store = "sqlite"                     # or "sqlite:PATH", or "postgres://user:pass@host/db"
//! identity = "<data_dir>/pki/collector" # the collector's own credential bundle
//! revocation_lists = []                 # CRL files (PEM or DER); revoked certificates are refused
//! cert_participant = "z-cert"           # participant id of the CERT: its analysts see everything
//! indicators = []                       # indicator sources published to agents (any format, files or directories)
//! allowlists = []                       # MISP warninglists, applied under warninglist_policy
//! publish_key = "<pki>/publish.key"     # Ed25519 key that signs published sets; default beside
//!                                       # `identity`; made only when neither is set (development)
//! max_batch_sightings = 1000            # a larger SightingBatch is refused
//! max_message_bytes = 4194304           # largest gRPC message accepted
//! max_import_bytes = 1073741824         # largest `zdn indicators import` (it streams in pieces)
//! stale_after_seconds = 300             # an agent without heartbeat for longer is "stale"
//!
//! [warninglist_policy]                  # what each warninglist does (see docs/OPERATING.md):
//! default = "specific"                  # withdraw what an entry names exactly, flag the rest
//! lists = {}                            # per list (directory or name): specific|suppress|flag|off
//!
//! [correlation]
//! min_participants = 2                  # distinct participants that open an incident
//! window_hours = 24                     # ... within this window of packet time
//! close_after_days = 14                 # an incident quiet this long closes; the next sighting opens wave 2
//! max_clock_ahead_minutes = 10          # packet times further ahead of the collector count as "now"
//! max_age_days = 30                     # sightings older than this on arrival are kept, not correlated
//!
//! [ingest]
//! per_agent_sightings_per_second = 20000 # long-run rate per agent; more is refused, retried
//! per_agent_burst = 200000              # ... with bursts up to this (>= max_batch_sightings)
//!
//! [alerts]                              # correlation opened/escalated → CERT systems
//! webhook = ""                          # http(s) URL: one signed JSON POST per event
//! webhook_secret_file = ""              # HMAC-SHA256 key file for X-ZDN-Signature
//! webhook_ca = ""                       # extra CA (PEM) for the webhook's certificate
//! webhook_attempts = 8                  # tries per event (transient failures only)
//! webhook_first_retry_ms = 1000         # first backoff; doubles, jittered
//! syslog = ""                           # syslog socket, e.g. /dev/log
//!
//! [retention]                           # days each class of data is kept (0: forever)
//! sightings_days = 365
//! correlations_days = 730               # aggregates and correlations
//! audit_days = 730
//! agents_days = 90                      # agents without a heartbeat for this long
//! interval_minutes = 60                 # how often the purge runs
//!
//! [metrics]
//! listen = ""                           # Prometheus /metrics (plain HTTP), e.g. "127.0.0.1:9478"; empty: off
//!
//! [[taxii.sources]]                     # a TAXII 2.1 collection as an indicator source (any number)
//! name = "partner-cti"                  # names it in logs and <data_dir>/taxii/<name>/
//! collection = "https://…/api1/collections/<id>/"
//! username = ""                         # basic authentication, with password_file
//! password_file = ""
//! token_file = ""                       # or a bearer token
//! ca = ""                               # extra CA (PEM) for the server's certificate
//! poll_minutes = 60                     # how often to ask for what was added
//! page_size = 1000                      # objects asked for per page
//!
//! [console]                             # the analysts' web console (HTTPS)
//! enabled = true
//! listen = "127.0.0.1:7444"             # its own port: browsers need no client certificate
//! session_hours = 12                    # a sign-in lasts this long (at most its token's life)
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The CERT's participant id unless the configuration names another.
pub const DEFAULT_CERT_PARTICIPANT: &str = "z-cert";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `"sqlite"` (`<data_dir>/zdn.sqlite`), `"sqlite:PATH"` or a `postgres://` URL.
    pub store: String,
    /// Defaults to `<data_dir>/pki/collector`.
    pub identity: Option<PathBuf>,
    pub revocation_lists: Vec<PathBuf>,
    pub cert_participant: String,
    pub indicators: Vec<PathBuf>,
    pub allowlists: Vec<PathBuf>,
    pub warninglist_policy: zdn_indicators::Policies,
    /// Defaults to `<data_dir>/pki/publish.key`.
    pub publish_key: Option<PathBuf>,
    pub max_batch_sightings: usize,
    pub max_message_bytes: usize,
    pub max_import_bytes: u64,
    pub stale_after_seconds: u64,
    pub correlation: CorrelationConfig,
    pub ingest: IngestConfig,
    pub alerts: AlertsConfig,
    pub retention: crate::retention::RetentionConfig,
    pub console: ConsoleConfig,
    pub metrics: MetricsConfig,
    pub taxii: TaxiiConfig,
}

/// `[taxii]`: TAXII 2.1 collections polled as indicator sources (see `taxii::source`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaxiiConfig {
    pub sources: Vec<crate::taxii::source::SourceConfig>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub listen: String,
}

impl MetricsConfig {
    /// The address to serve metrics on, if enabled.
    pub fn addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        let addr = self
            .listen
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("metrics.listen {:?}: {e}", self.listen)))?;
        Ok(Some(addr))
    }
}

/// The web console (see `console`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub session_hours: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            listen: "127.0.0.1:7444".parse().expect("valid literal"),
            session_hours: 12,
        }
    }
}

/// Where correlation alerts go besides `WatchCorrelations` (see `alerts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub webhook: String,
    pub webhook_secret_file: String,
    pub webhook_ca: String,
    pub webhook_attempts: u32,
    pub webhook_first_retry_ms: u64,
    pub syslog: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhook: String::new(),
            webhook_secret_file: String::new(),
            webhook_ca: String::new(),
            webhook_attempts: 8,
            webhook_first_retry_ms: 1000,
            syslog: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub per_agent_sightings_per_second: u32,
    pub per_agent_burst: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig { per_agent_sightings_per_second: 20_000, per_agent_burst: 200_000 }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationConfig {
    pub min_participants: u32,
    pub window_hours: u32,
    pub close_after_days: u32,
    pub max_clock_ahead_minutes: u32,
    pub max_age_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7443".parse().expect("valid literal"),
            data_dir: PathBuf::from("/var/lib/zdn-collector"),
            store: "sqlite".to_owned(),
            identity: None,
            revocation_lists: Vec::new(),
            cert_participant: DEFAULT_CERT_PARTICIPANT.to_owned(),
            indicators: Vec::new(),
            allowlists: Vec::new(),
            warninglist_policy: zdn_indicators::Policies::default(),
            publish_key: None,
            max_batch_sightings: 1000,
            max_message_bytes: 4 * 1024 * 1024,
            max_import_bytes: 1 << 30,
            stale_after_seconds: 300,
            correlation: CorrelationConfig::default(),
            ingest: IngestConfig::default(),
            alerts: AlertsConfig::default(),
            retention: crate::retention::RetentionConfig::default(),
            console: ConsoleConfig::default(),
            metrics: MetricsConfig::default(),
            taxii: TaxiiConfig::default(),
        }
    }
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            min_participants: 2,
            window_hours: 24,
            close_after_days: 14,
            max_clock_ahead_minutes: 10,
            max_age_days: 30,
        }
    }
}

pub use zdn_config_file::ConfigError;

impl Config {
    /// Reads `path`; keys left out keep their defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config: Config = zdn_config_file::read(path)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        self.metrics.addr()?;
        if self.correlation.min_participants < 2 {
            return invalid("correlation.min_participants must be at least 2");
        }
        let c = &self.correlation;
        if c.window_hours == 0 {
            return invalid("correlation.window_hours must be at least 1");
        }
        if c.close_after_days == 0 || u64::from(c.close_after_days) * 24 < u64::from(c.window_hours) {
            return invalid("correlation.close_after_days must be at least 1 and at least the window");
        }
        if c.max_age_days == 0 {
            return invalid("correlation.max_age_days must be at least 1");
        }
        if self.max_batch_sightings == 0 || self.max_message_bytes < 1024 {
            return invalid("max_batch_sightings must be >= 1 and max_message_bytes >= 1024");
        }
        if self.ingest.per_agent_sightings_per_second == 0
            || (self.ingest.per_agent_burst as usize) < self.max_batch_sightings
        {
            return invalid(
                "ingest.per_agent_sightings_per_second must be >= 1 and ingest.per_agent_burst >= max_batch_sightings",
            );
        }
        if self.console.session_hours == 0 || self.console.session_hours > 24 * 7 {
            return invalid("console.session_hours must be 1 to 168");
        }
        self.store_location()?;
        let mut names = std::collections::BTreeSet::new();
        for source in &self.taxii.sources {
            source.validate().map_err(|e| ConfigError::Invalid(e.to_string()))?;
            if !names.insert(&source.name) {
                return Err(ConfigError::Invalid(format!("taxii source {:?} is named twice", source.name)));
            }
        }
        zdn_transport::identity::validate_participant(&self.cert_participant)
            .map_err(|e| ConfigError::Invalid(format!("cert_participant: {e}")))
    }

    /// `stale_after_seconds` in milliseconds, as the fleet view compares heartbeat times.
    pub fn stale_after_ms(&self) -> i64 {
        i64::try_from(self.stale_after_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    pub fn identity_dir(&self) -> PathBuf {
        self.identity.clone().unwrap_or_else(|| self.data_dir.join("pki").join("collector"))
    }

    /// The key that signs published sets: `publish_key`, or beside the collector's
    /// credentials (`<pki>/publish.key`, where `pki init` writes it). A key where earlier
    /// releases made one (`<data_dir>/pki/publish.key`) is used when there is none beside the
    /// credentials: agents may have pinned it.
    pub fn publish_key_path(&self) -> PathBuf {
        if let Some(path) = &self.publish_key {
            return path.clone();
        }
        let identity = self.identity_dir();
        let beside = identity.parent().unwrap_or(&identity).join("publish.key");
        let earlier = self.data_dir.join("pki").join("publish.key");
        if !beside.exists() && earlier.exists() { earlier } else { beside }
    }

    /// What each published version is built from.
    pub fn publishing_sources(&self) -> crate::service::publishing::Sources {
        crate::service::publishing::Sources {
            indicators: self.indicators.clone(),
            allowlists: self.allowlists.clone(),
            policies: self.warninglist_policy.clone(),
            imports: self.data_dir.join("imports"),
            taxii: crate::taxii::source::bundle_paths(&self.taxii.sources, &self.data_dir),
        }
    }

    /// The publishing key, made if it is missing and may be (see [`Self::existing_publisher`]).
    pub fn publisher(&self) -> Result<zdn_indicators::signing::Publisher, ConfigError> {
        match self.existing_publisher()? {
            Some(publisher) => Ok(publisher),
            None => zdn_indicators::signing::Publisher::load_or_create(&self.publish_key_path())
                .map_err(|e| ConfigError::Invalid(format!("publish_key: {e}"))),
        }
    }

    /// The publishing key if it exists; `None` if it is missing and may be made, which is only
    /// when the configuration names neither credentials nor a key (a development start).
    /// Otherwise agents pinned the key `pki init` printed, and a new one would make every
    /// agent refuse the sets, so a missing key is an error.
    pub fn existing_publisher(&self) -> Result<Option<zdn_indicators::signing::Publisher>, ConfigError> {
        let path = self.publish_key_path();
        if path.exists() {
            return zdn_indicators::signing::Publisher::load(&path)
                .map(Some)
                .map_err(|e| ConfigError::Invalid(format!("publish_key: {e}")));
        }
        if self.identity.is_none() && self.publish_key.is_none() {
            return Ok(None);
        }
        Err(ConfigError::Invalid(format!(
            "no indicator publishing key at {}: agents pin the key `pki init` printed, so the collector \
             will not make a new one; set publish_key to the file `pki init` wrote (<pki>/publish.key)",
            path.display()
        )))
    }

    /// Where the store is: `store` resolved against `data_dir`.
    pub fn store_location(&self) -> Result<crate::store::Location, ConfigError> {
        crate::store::Location::parse(&self.store, &self.data_dir)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The correlation rule these settings make.
    pub fn correlation_rule(&self) -> crate::correlation::CorrelationRule {
        const HOUR_MS: i64 = 3_600_000;
        let c = &self.correlation;
        crate::correlation::CorrelationRule {
            min_participants: c.min_participants,
            window_ms: i64::from(c.window_hours) * HOUR_MS,
            close_after_ms: i64::from(c.close_after_days) * 24 * HOUR_MS,
            max_future_ms: i64::from(c.max_clock_ahead_minutes) * 60_000,
            max_age_ms: i64::from(c.max_age_days) * 24 * HOUR_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_publishing_key_stops_the_start_unless_nothing_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let config = Config {
            data_dir: dir.path().join("data"),
            identity: Some(pki.join("collector")),
            ..Config::default()
        };
        let err = config.publisher().err().unwrap().to_string();
        assert!(
            err.contains(&format!("no indicator publishing key at {}", pki.join("publish.key").display())),
            "{err}"
        );
        assert!(!pki.join("publish.key").exists(), "no key was made");
        // `pki init` writes the key where the configuration looks for it.
        crate::pki::init(&pki, &[]).unwrap();
        let printed =
            zdn_indicators::signing::Publisher::load(&pki.join("publish.key")).unwrap().public_hex();
        assert_eq!(config.publisher().unwrap().public_hex(), printed);
        // A key an earlier release made in the data directory is still found.
        let earlier_dir = tempfile::tempdir().unwrap();
        let earlier = Config {
            data_dir: earlier_dir.path().join("data"),
            identity: Some(earlier_dir.path().join("elsewhere/collector")),
            ..Config::default()
        };
        assert!(earlier.existing_publisher().is_err());
        let made = zdn_indicators::signing::Publisher::load_or_create(
            &earlier_dir.path().join("data/pki/publish.key"),
        );
        assert_eq!(earlier.publisher().unwrap().public_hex(), made.unwrap().public_hex());
        // A development start that names nothing gets a key made for it.
        let dev = Config { data_dir: dir.path().join("dev"), ..Config::default() };
        assert!(dev.existing_publisher().unwrap().is_none());
        dev.publisher().unwrap();
        assert!(dir.path().join("dev/pki/publish.key").exists());
    }

    #[test]
    fn partial_files_keep_defaults_and_bad_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\n[correlation]\nmin_participants = 3\n").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!((c.correlation.min_participants, c.correlation.window_hours), (3, 24));
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(Config::load(&path).unwrap_err().to_string().contains("unknown field `lisen`"));
        std::fs::write(&path, "[correlation]\nmin_participants = 1\n").unwrap();
        assert!(matches!(Config::load(&path), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn bad_ingest_limits_and_store_locations_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (text, expected) in [
            ("[ingest]\nper_agent_sightings_per_second = 0\n", "ingest.per_agent_sightings_per_second"),
            (
                "max_batch_sightings = 500\n[ingest]\nper_agent_burst = 100\n",
                "per_agent_burst >= max_batch_sightings",
            ),
            ("store = \"mysql://x\"\n", "expected \"sqlite\""),
            ("[retention]\nsightings_day = 3\n", "unknown field `sightings_day`"),
            ("[console]\nsession_hours = 0\n", "console.session_hours must be 1 to 168"),
            ("[console]\nlisten = \"localhost\"\n", "invalid socket address"),
            (
                "[metrics]\nlisten = \"localhost:9478\"\n",
                "metrics.listen \"localhost:9478\": invalid socket address",
            ),
            ("[correlation]\nclose_after_days = 0\n", "correlation.close_after_days must be at least 1"),
            ("[correlation]\nwindow_hours = 48\nclose_after_days = 1\n", "at least the window"),
            ("[correlation]\nmax_age_days = 0\n", "correlation.max_age_days must be at least 1"),
            ("[correlation]\nmax_clock_ahead_minutes = -1\n", "invalid value"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn taxii_sources_are_read_and_checked_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let source =
            "[[taxii.sources]]\nname = \"cti\"\ncollection = \"https://t.example/api1/collections/x/\"\n";
        std::fs::write(&path, source).unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!((config.taxii.sources[0].poll_minutes, config.taxii.sources[0].page_size), (60, 1000));
        std::fs::write(&path, format!("{source}{source}")).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("\"cti\" is named twice"), "{err}");
        std::fs::write(&path, source.replace("https://t.example", "t.example")).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("taxii source \"cti\"") && err.contains("http://"), "{err}");
    }

    #[test]
    fn the_packaged_reference_file_states_the_real_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/collector.toml");
        let packaged = Config::load(&path).unwrap();
        assert_eq!(format!("{packaged:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn the_container_configurations_are_valid_and_reachable_from_outside() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/container");
        for file in ["image.toml", "collector.toml"] {
            let config = Config::load(&dir.join(file)).unwrap();
            assert!(
                config.listen.ip().is_unspecified() && config.console.listen.ip().is_unspecified(),
                "{file}"
            );
            let metrics = config.metrics.addr().unwrap().expect("the health check needs /metrics");
            assert!(metrics.ip().is_loopback(), "{file}: /metrics stays inside the container");
        }
    }
}
