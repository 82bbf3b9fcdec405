//! `agent.toml`: every key of `zdn-agent run`, its default, and the checks `check-config` runs.
//! The reference file with every key commented is `packaging/agent.toml`; a test keeps it equal
//! to the defaults here.
//!
//! ```toml
//! state_dir = "/var/lib/zdn-agent"   # pseudonym secret, spool, installed indicator set
//! home_net = []                       # internal networks (CIDR); empty: every source is internal
//! share_internal_addresses = false    # true: report internal addresses instead of pseudonyms
//!
//! [capture]
//! interfaces = []                     # live capture (AF_PACKET); needs CAP_NET_RAW
//! promiscuous = false
//! workers = 1                         # capture threads per interface (PACKET_FANOUT by flow)
//! method = "ring"                     # ring: TPACKET_V3 mapped ring; socket: pnet, a recvfrom per packet
//! pcap = []                           # capture files read once at start (forensics, tests)
//!
//! [capture.ring]                      # per worker; the defaults hold ~0.1 s of a busy 10 GbE link
//! block_size = 2097152                # bytes per block, a power of two >= 4096
//! block_count = 64                    # blocks per ring: 128 MiB of memory per worker
//! retire_timeout_ms = 10              # longest a partly filled block waits to be read
//!
//! [collector]
//! url = ""                            # https://HOST:PORT; empty: sightings stay in the spool
//! identity = "/etc/zdn/identity"      # cert.pem, key.pem, ca.pem from `zdn-collector pki issue`
//! batch_size = 500                    # sightings per batch on the Report stream
//! heartbeat_seconds = 60
//! reconnect_max_seconds = 60          # ceiling of the exponential reconnect backoff
//!
//! [indicators]
//! pinned_key = ""                     # Ed25519 public key the collector's sets must carry
//! sync = true                         # subscribe to the collector's set
//! local = []                          # extra local indicator sources, merged in
//! allowlists = []                     # local MISP warninglists (see warninglist_policy)
//!
//! [indicators.warninglist_policy]     # what each warninglist does to what it covers:
//! default = "specific"                # withdraw what an entry names exactly, flag the rest
//! lists = {}                          # per list (directory or name): specific|suppress|flag|off
//!
//! [sightings]
//! window_seconds = 60                 # aggregation window per (indicator, host, via)
//! max_open = 65536                    # open aggregates; the oldest is sent early beyond this
//!
//! [rate_limit]
//! per_indicator_per_minute = 60       # new sightings of one indicator
//! overall_per_second = 200            # new sightings in all
//!
//! [spool]
//! max_bytes = 268435456               # on-disk queue bound; beyond it new sightings are refused, counted
//!
//! [alerts]
//! log = ""                            # JSON-lines alert log (ECS names) for the local SIEM; empty: off
//! syslog = ""                         # the same documents to a syslog socket, e.g. "/dev/log"; empty: off
//!
//! [metrics]
//! listen = ""                         # Prometheus /metrics, e.g. "127.0.0.1:9477"; empty: off
//! ```

use crate::packet_path::HomeNet;
use ipnet::IpNet;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use zdn_indicators::signing::VerifyingKey;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub state_dir: PathBuf,
    pub home_net: Vec<IpNet>,
    pub share_internal_addresses: bool,
    pub capture: CaptureConfig,
    pub collector: CollectorConfig,
    pub indicators: IndicatorConfig,
    pub sightings: SightingConfig,
    pub rate_limit: RateLimitConfig,
    pub spool: SpoolConfig,
    pub alerts: AlertConfig,
    pub metrics: MetricsConfig,
    pub history: HistoryConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub interfaces: Vec<String>,
    pub promiscuous: bool,
    pub workers: usize,
    pub method: CaptureMethod,
    pub ring: RingSettings,
    pub pcap: Vec<PathBuf>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interfaces: Vec::new(),
            promiscuous: false,
            workers: 1,
            method: CaptureMethod::Ring,
            ring: RingSettings::default(),
            pcap: Vec::new(),
        }
    }
}

/// How live capture reads an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMethod {
    /// A TPACKET_V3 memory-mapped ring (`zdn-packet-ring`): blocks of packets, no system call
    /// per packet.
    Ring,
    /// pnet's AF_PACKET socket, one `recvfrom` per packet: the fallback.
    Socket,
}

impl CaptureMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMethod::Ring => "ring",
            CaptureMethod::Socket => "socket",
        }
    }
}

/// `[capture.ring]`: the layout of each worker's ring.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingSettings {
    pub block_size: u32,
    pub block_count: u32,
    pub retire_timeout_ms: u64,
}

impl Default for RingSettings {
    fn default() -> Self {
        let ring = zdn_packet_ring::RingConfig::default();
        RingSettings {
            block_size: ring.block_size,
            block_count: ring.block_count,
            retire_timeout_ms: ring.retire_timeout.as_millis() as u64,
        }
    }
}

impl RingSettings {
    pub fn ring(&self) -> zdn_packet_ring::RingConfig {
        zdn_packet_ring::RingConfig {
            block_size: self.block_size,
            block_count: self.block_count,
            retire_timeout: std::time::Duration::from_millis(self.retire_timeout_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    pub url: String,
    pub identity: PathBuf,
    pub batch_size: usize,
    pub heartbeat_seconds: u64,
    pub reconnect_max_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndicatorConfig {
    pub pinned_key: String,
    pub sync: bool,
    pub local: Vec<PathBuf>,
    pub allowlists: Vec<PathBuf>,
    pub warninglist_policy: zdn_indicators::Policies,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SightingConfig {
    pub window_seconds: u32,
    pub max_open: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub per_indicator_per_minute: u32,
    pub overall_per_second: u32,
}

/// `[history]`: the private destination history that retro-hunts search (see `crate::history`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Days of history kept; 0 turns the history off (nothing recorded, what was kept deleted).
    pub retention_days: u32,
    /// The history's size on disk at most; the oldest hours go first.
    pub max_mb: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { retention_days: 14, max_mb: 1024 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    pub log: String,
    pub syslog: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub listen: String,
}

impl MetricsConfig {
    /// The address to serve metrics on, if enabled.
    pub fn addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|e| format!("metrics.listen {:?}: {e}", self.listen))
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            state_dir: PathBuf::from("/var/lib/zdn-agent"),
            home_net: Vec::new(),
            share_internal_addresses: false,
            capture: CaptureConfig::default(),
            collector: CollectorConfig::default(),
            indicators: IndicatorConfig::default(),
            sightings: SightingConfig::default(),
            rate_limit: RateLimitConfig::default(),
            spool: SpoolConfig::default(),
            alerts: AlertConfig::default(),
            metrics: MetricsConfig::default(),
            history: HistoryConfig::default(),
        }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            url: String::new(),
            identity: PathBuf::from("/etc/zdn/identity"),
            batch_size: 500,
            heartbeat_seconds: 60,
            reconnect_max_seconds: 60,
        }
    }
}

impl Default for IndicatorConfig {
    fn default() -> Self {
        IndicatorConfig {
            pinned_key: String::new(),
            sync: true,
            local: Vec::new(),
            allowlists: Vec::new(),
            warninglist_policy: Default::default(),
        }
    }
}

impl Default for SightingConfig {
    fn default() -> Self {
        SightingConfig { window_seconds: 60, max_open: 65_536 }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { per_indicator_per_minute: 60, overall_per_second: 200 }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig { max_bytes: 256 << 20 }
    }
}

pub use zdn_config_file::ConfigError;

impl AgentConfig {
    /// Reads `path`; keys left out keep their defaults.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let config: AgentConfig = zdn_config_file::read(path)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.capture.interfaces.is_empty() && self.capture.pcap.is_empty() {
            return invalid("nothing to capture: set capture.interfaces or capture.pcap".into());
        }
        if self.history.retention_days > 366 || (self.history.retention_days > 0 && self.history.max_mb == 0)
        {
            return invalid("history.retention_days must be 0 (off) to 366, with history.max_mb >= 1".into());
        }
        if !(1..=64).contains(&self.capture.workers) {
            return invalid("capture.workers must be between 1 and 64".into());
        }
        if self.capture.method == CaptureMethod::Ring {
            self.capture
                .ring
                .ring()
                .check()
                .map_err(|e| ConfigError::Invalid(format!("capture.ring: {e}")))?;
        }
        let c = &self.collector;
        let scheme_ok = ["https://", "http://"].iter().any(|scheme| c.url.starts_with(scheme));
        if !c.url.is_empty() && !scheme_ok {
            return invalid(format!("collector.url {:?} must start with https://", c.url));
        }
        if c.batch_size == 0 || c.heartbeat_seconds == 0 || c.reconnect_max_seconds == 0 {
            return invalid(
                "collector.batch_size, heartbeat_seconds, reconnect_max_seconds must be >= 1".into(),
            );
        }
        if self.indicators.sync && !c.url.is_empty() && self.indicators.pinned_key.is_empty() {
            return invalid(
                "indicators.sync needs indicators.pinned_key (the collector's publish key)".into(),
            );
        }
        if !self.indicators.pinned_key.is_empty() {
            self.pinned_key().map_err(ConfigError::Invalid)?;
        }
        if self.sightings.window_seconds == 0 || self.sightings.max_open == 0 {
            return invalid("sightings.window_seconds and sightings.max_open must be >= 1".into());
        }
        if self.rate_limit.per_indicator_per_minute == 0 || self.rate_limit.overall_per_second == 0 {
            return invalid("rate_limit values must be >= 1".into());
        }
        self.metrics.addr().map_err(ConfigError::Invalid)?;
        if self.spool.max_bytes < 1 << 20 {
            return invalid("spool.max_bytes must be at least 1 MiB".into());
        }
        Ok(())
    }

    /// The pinned publish key, if one is configured.
    pub fn pinned_key(&self) -> Result<Option<VerifyingKey>, String> {
        if self.indicators.pinned_key.is_empty() {
            return Ok(None);
        }
        zdn_indicators::signing::parse_public_key(&self.indicators.pinned_key)
            .map(Some)
            .map_err(|e| format!("indicators.pinned_key: {e}"))
    }

    pub fn home(&self) -> HomeNet {
        HomeNet::new(self.home_net.clone())
    }

    pub fn secret_path(&self) -> PathBuf {
        self.state_dir.join("pseudonym.key")
    }

    /// Where the destination history's hourly buckets live.
    pub fn history_dir(&self) -> PathBuf {
        self.state_dir.join("history")
    }

    pub fn spool_path(&self) -> PathBuf {
        self.state_dir.join("spool.sqlite")
    }

    /// The last good set received from the collector.
    pub fn installed_set_path(&self) -> PathBuf {
        self.state_dir.join("indicators.zdn")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_files_keep_defaults_and_bad_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "home_net = [\"10.0.0.0/8\"]\n[capture]\npcap = [\"x.pcap\"]\n").unwrap();
        let c = AgentConfig::load(&path).unwrap();
        assert_eq!(c.home_net.len(), 1);
        assert_eq!(c.sightings.window_seconds, 60);
        for (text, says) in [
            ("[capture]\npcap=[\"x\"]\n[colector]\n", "unknown field `colector`"),
            ("[capture]\n", "nothing to capture"),
            ("[capture]\npcap=[\"x\"]\n[collector]\nurl=\"ftp://x\"\n", "must start with https://"),
            ("[capture]\npcap=[\"x\"]\n[collector]\nurl=\"https://c:1\"\n", "needs indicators.pinned_key"),
            ("[capture]\npcap=[\"x\"]\n[indicators]\npinned_key=\"abc\"\n", "indicators.pinned_key"),
            ("home_net=[\"10.0.0.0/33\"]\n[capture]\npcap=[\"x\"]\n", "home_net"),
            ("[capture]\npcap=[\"x\"]\nworkers=0\n", "capture.workers"),
            ("[capture]\npcap=[\"x\"]\nmethod=\"pcap\"\n", "unknown variant `pcap`"),
            (
                "[capture]\npcap=[\"x\"]\n[capture.ring]\nblock_size=5000\n",
                "capture.ring: ring block size 5000",
            ),
            (
                "[capture]\npcap=[\"x\"]\n[capture.ring]\nretire_timeout_ms=0\n",
                "capture.ring: ring retire timeout",
            ),
            ("[capture]\npcap=[\"x\"]\n[metrics]\nlisten=\"localhost\"\n", "metrics.listen"),
            ("[capture]\npcap=[\"x\"]\n[spool]\nmax_bytes=1000\n", "spool.max_bytes"),
            ("[capture]\npcap=[\"x\"]\n[rate_limit]\noverall_per_second=0\n", "rate_limit"),
            ("[capture]\npcap=[\"x\"]\n[history]\nretention_days=400\n", "history.retention_days"),
            ("[capture]\npcap=[\"x\"]\n[history]\nmax_mb=0\n", "history.max_mb >= 1"),
            ("[capture]\npcap=[\"x\"]\n[history]\ndays=3\n", "unknown field `days`"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = AgentConfig::load(&path).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_packaged_reference_file_states_the_real_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/agent.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let packaged: AgentConfig = toml::from_str(&text).unwrap();
        assert_eq!(packaged, AgentConfig::default());
    }
}
