//! Server configuration: built-in defaults, then an optional TOML file, then command-line
//! flags (the CLI applies those on top of [`Config::load`]). Unknown keys are refused so a
//! typo never silently does nothing.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "./kaudit-data"
//! # database = "postgres://kaudit@127.0.0.1/kaudit"   # default: SQLite in data_dir
//! # database_schema = "kaudit"     # PostgreSQL schema (created if missing); default: search_path
//! retention_days = 30
//! max_body_bytes = 16777216
//! max_decompressed_bytes = 134217728
//! rule_matching = "first"          # or "all"
//! dedupe_window_seconds = 60
//!
//! [[outputs]]
//! type = "file"
//! path = "/var/log/kaudit/alerts.jsonl"
//! min_priority = "notice"
//!
//! [[outputs]]
//! type = "syslog"
//! address = "127.0.0.1:514"
//! protocol = "udp"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Everything `kaudit serve` needs to know.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the SQLite database and server state.
    pub data_dir: PathBuf,
    /// `postgres://...` to store in PostgreSQL instead of SQLite.
    pub database: Option<String>,
    /// With `database`: the PostgreSQL schema holding kaudit's tables (created if missing);
    /// unset, the connection's default search path.
    pub database_schema: Option<String>,
    /// Events and alerts older than this many days are deleted in the background (0: keep
    /// everything).
    pub retention_days: u32,
    /// Most bytes accepted for one intake request on the wire.
    pub max_body_bytes: usize,
    /// Most bytes one intake request may decompress to.
    pub max_decompressed_bytes: usize,
    /// `first`: per event, only the first matching active rule alerts (Falco's default);
    /// `all`: every matching active rule alerts.
    pub rule_matching: RuleMatching,
    /// Identical alerts (same rule and message) reaching one output within this many seconds
    /// are counted, not repeated (0: no deduplication).
    pub dedupe_window_seconds: u64,
    /// Where alerts are sent besides the database.
    pub outputs: Vec<OutputConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database: None,
            database_schema: None,
            retention_days: 30,
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 128 * 1024 * 1024,
            rule_matching: RuleMatching::First,
            dedupe_window_seconds: 60,
            outputs: Vec::new(),
        }
    }
}

/// The data directory used when none is given: `kaudit-data` under the working directory.
pub const DEFAULT_DATA_DIR: &str = "./kaudit-data";

impl Config {
    /// The defaults, overridden by the file at `path` when given.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text (the file's contents).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 || self.max_decompressed_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_body_bytes and max_decompressed_bytes must be positive".into(),
            ));
        }
        if let Some(url) = &self.database
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "database must be a postgres:// URL (leave it unset for SQLite in the data directory)".into(),
            ));
        }
        if let Some(schema) = &self.database_schema {
            let plain = !schema.is_empty()
                && schema.len() <= 63
                && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !plain {
                return Err(ConfigError::Invalid(format!(
                    "database_schema {schema:?} must be a plain lowercase identifier (a-z, 0-9, _; at most 63)"
                )));
            }
            if self.database.is_none() {
                return Err(ConfigError::Invalid(
                    "database_schema needs database (a postgres:// URL)".into(),
                ));
            }
        }
        for (i, output) in self.outputs.iter().enumerate() {
            output
                .validate()
                .map_err(|reason| ConfigError::Invalid(format!("outputs[{i}]: {reason}")))?;
        }
        Ok(())
    }
}

/// How many matching rules alert per event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleMatching {
    /// Only the first matching active rule, in rule-file order.
    #[default]
    First,
    /// Every matching active rule.
    All,
}

/// One alert output: `min_priority` beside the keys of its [`OutputKind`].
#[derive(Clone, Debug)]
pub struct OutputConfig {
    /// Only alerts at least this severe are sent (default: every alert).
    pub min_priority: Option<String>,
    /// Where and how.
    pub kind: OutputKind,
}

impl<'de> Deserialize<'de> for OutputConfig {
    /// Takes `min_priority` out and reads the rest as an [`OutputKind`], which refuses
    /// unknown keys (serde's `flatten` would silently accept them).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<OutputConfig, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let min_priority = match table.remove("min_priority") {
            None => None,
            Some(toml::Value::String(s)) => Some(s),
            Some(_) => return Err(D::Error::custom("min_priority must be a string")),
        };
        let kind = OutputKind::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(OutputConfig { min_priority, kind })
    }
}

/// The kinds of alert output.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum OutputKind {
    /// Falco JSON alerts, one per line, on standard output.
    Stdout {},
    /// Falco JSON alerts, one per line, appended to a file.
    File {
        /// The file (created if missing).
        path: PathBuf,
    },
    /// Each alert POSTed as a Falco JSON alert.
    Webhook {
        /// `http://` or `https://` URL.
        url: String,
        /// Extra request headers (`Authorization`, ...).
        #[serde(default)]
        headers: Vec<(String, String)>,
        /// Attempts per alert before it is dropped (default 5).
        #[serde(default = "default_attempts")]
        max_attempts: u32,
        /// Timeout of one attempt in seconds (default 10).
        #[serde(default = "default_timeout")]
        timeout_seconds: u64,
    },
    /// Slack-compatible incoming webhook (`{"text": ...}`).
    Slack {
        /// The incoming-webhook URL.
        url: String,
        /// Attempts per alert before it is dropped (default 5).
        #[serde(default = "default_attempts")]
        max_attempts: u32,
        /// Timeout of one attempt in seconds (default 10).
        #[serde(default = "default_timeout")]
        timeout_seconds: u64,
    },
    /// RFC 5424 syslog messages.
    Syslog {
        /// `host:port` of the syslog server.
        address: String,
        /// `udp` (default) or `tcp` (octet-counted framing, RFC 6587).
        #[serde(default)]
        protocol: SyslogProtocol,
        /// Facility name (default `local0`).
        #[serde(default = "default_facility")]
        facility: String,
    },
}

/// Transport of syslog messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    /// One datagram per message.
    #[default]
    Udp,
    /// A stream with octet-counting framing.
    Tcp,
}

fn default_attempts() -> u32 {
    5
}

fn default_timeout() -> u64 {
    10
}

fn default_facility() -> String {
    "local0".to_owned()
}

/// The syslog facility number of a facility name.
pub fn facility_number(name: &str) -> Option<u8> {
    let n = match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    };
    Some(n)
}

impl OutputConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.min_priority {
            p.parse::<kaudit_model::Priority>().map_err(|e| e.to_string())?;
        }
        match &self.kind {
            OutputKind::Webhook {
                url, max_attempts, ..
            }
            | OutputKind::Slack {
                url, max_attempts, ..
            } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("url {url:?} must start with http:// or https://"));
                }
                if *max_attempts == 0 {
                    return Err("max_attempts must be at least 1".into());
                }
            }
            OutputKind::Syslog { facility, .. } => {
                facility_number(facility).ok_or_else(|| format!("unknown syslog facility {facility:?}"))?;
            }
            OutputKind::Stdout {} | OutputKind::File { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and validates a config text; returns the error text on failure.
    fn check(text: &str) -> Result<Config, String> {
        let config = Config::parse(text)?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn defaults_and_overrides() {
        let config = check("").unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.retention_days, 30);
        let config = check("retention_days = 7\nrule_matching = \"all\"\n").unwrap();
        assert_eq!(
            (config.retention_days, config.rule_matching),
            (7, RuleMatching::All)
        );
    }

    #[test]
    fn outputs() {
        let config = check(
            r#"
[[outputs]]
type = "syslog"
address = "127.0.0.1:514"
protocol = "tcp"
min_priority = "warning"

[[outputs]]
type = "webhook"
url = "http://127.0.0.1:9000/hook"
headers = [["Authorization", "Bearer x"]]
"#,
        )
        .unwrap();
        assert_eq!(config.outputs.len(), 2);
        assert!(matches!(
            config.outputs[1].kind,
            OutputKind::Webhook { max_attempts: 5, .. }
        ));
    }

    #[test]
    fn mistakes_are_refused_with_their_place() {
        assert!(
            check("retention_dayz = 3")
                .unwrap_err()
                .contains("retention_dayz")
        );
        assert!(
            check("[[outputs]]\ntype = \"pager\"")
                .unwrap_err()
                .contains("pager")
        );
        assert!(
            check("[[outputs]]\ntype = \"stdout\"\ncolour = 1")
                .unwrap_err()
                .contains("colour")
        );
        assert!(
            check("[[outputs]]\ntype = \"stdout\"\nmin_priority = \"loud\"")
                .unwrap_err()
                .contains("outputs[0]")
        );
        assert!(
            check("database = \"mysql://x\"")
                .unwrap_err()
                .contains("postgres://")
        );
        assert!(check("[[outputs]]\ntype = \"syslog\"\naddress = \"x:1\"\nfacility = \"nope\"").is_err());
        let postgres = "database = \"postgres://kaudit@db/kaudit\"\n";
        assert!(check(&format!("{postgres}database_schema = \"kaudit_prod\"")).is_ok());
        assert!(
            check(&format!("{postgres}database_schema = \"x; drop\""))
                .unwrap_err()
                .contains("database_schema")
        );
        assert!(
            check("database_schema = \"kaudit\"")
                .unwrap_err()
                .contains("needs database")
        );
    }
}
