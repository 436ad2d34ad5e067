//! The `.conf` reader: the C++ `ConfigFileReader.cpp` (`CConfigFileReader`),
//! `ServInfo.cpp` (`read_server_config`) and `util.cpp` (`CStrExplode`).
//!
//! Semantics reproduced from the C++, because operators' files depend on them:
//! - a line is cut at its first `#`, wherever it is (so a value cannot hold `#`);
//! - a line without `=` is ignored; the key/value split is at the first `=`;
//! - key and value are trimmed of spaces and tabs only (a `\r` stays);
//! - a line whose key or value is empty after trimming is skipped, so a key
//!   is either absent or non-empty, never empty;
//! - of duplicate keys the first wins (`std::map::insert` keeps it).
//!
//! One difference, on purpose: the C++ reads through a 256-byte `fgets`
//! buffer, so a line longer than 255 bytes is split into pieces parsed as
//! separate lines. We read whole lines.
//!
//! Why not the `ini` crate: rust-ini keeps the trailing `# comment` in the
//! value (`ThreadNum=48 # double the number of CPU core` in the reference
//! `dbproxyserver.conf`), treats `[...]` as sections and `;` as a comment
//! leader, and applies backslash escapes, none of which the C++ does.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use thiserror::Error;

/// Why a configuration could not be used. Every variant names the key or
/// the file, so a server can exit with a message an operator can act on.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key the server needs is absent.
    #[error("config key {key} is missing")]
    Missing {
        /// The key.
        key: String,
    },
    /// A key is present but its value is unusable.
    #[error("config key {key} has an invalid value {value:?}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// Its value as read.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A parsed `.conf` file (`CConfigFileReader`).
#[derive(Debug, Clone, Default)]
pub struct ConfigFileReader {
    entries: HashMap<String, String>,
}

impl ConfigError {
    /// A key whose value is not usable, and why.
    pub fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

impl ConfigFileReader {
    /// Reads and parses `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<ConfigFileReader, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Reference files carry Chinese comments; we only cut them off, so a
        // lossy decode never changes a key or a value that is ASCII.
        Ok(ConfigFileReader::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Parses the text of a `.conf` file.
    pub fn parse(text: &str) -> ConfigFileReader {
        let mut entries = HashMap::new();
        for line in text.split('\n') {
            let line = match line.find('#') {
                Some(i) => &line[..i],
                None => line,
            };
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let (key, value) = (trim_space(key), trim_space(value));
            if key.is_empty() || value.is_empty() {
                continue;
            }
            entries
                .entry(key.to_string())
                .or_insert_with(|| value.to_string());
        }
        ConfigFileReader { entries }
    }

    /// `GetConfigName`: the value of `key`, `None` when absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The value of `key`, or [`ConfigError::Missing`] naming it.
    pub fn require(&self, key: &str) -> Result<&str, ConfigError> {
        self.get(key).ok_or_else(|| ConfigError::Missing {
            key: key.to_string(),
        })
    }

    /// The value of `key` parsed as `T` (a port, a count...), or an error
    /// naming the key. Stricter than the C++ `atoi`, which reads `80x` as 80
    /// and `x` as 0.
    pub fn require_parse<T>(&self, key: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let value = self.require(key)?;
        value.parse().map_err(|e: T::Err| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: e.to_string(),
        })
    }

    /// Like [`require_parse`](Self::require_parse) for an optional key:
    /// `Ok(None)` when absent, an error when present but unparsable.
    pub fn get_parse<T>(&self, key: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.require_parse(key).map(Some),
        }
    }

    /// The `;`-separated list under `key` (`ListenIP=0.0.0.0;10.0.0.1`).
    pub fn require_list(&self, key: &str, separator: char) -> Result<Vec<String>, ConfigError> {
        Ok(explode(self.require(key)?, separator))
    }

    /// `read_server_config`: the numbered pairs `<ip_key>1`/`<port_key>1`,
    /// `<ip_key>2`/`<port_key>2`, ... up to the first number where either key
    /// is absent. An unparsable port is an error naming its key (the C++
    /// `atoi` would make it 0).
    pub fn read_server_config(
        &self,
        ip_key: &str,
        port_key: &str,
    ) -> Result<Vec<ServerAddr>, ConfigError> {
        let mut servers = Vec::new();
        for n in 1.. {
            let (ik, pk) = (format!("{ip_key}{n}"), format!("{port_key}{n}"));
            let (Some(ip), Some(_)) = (self.get(&ik), self.get(&pk)) else {
                break;
            };
            servers.push(ServerAddr {
                ip: ip.to_string(),
                port: self.require_parse(&pk)?,
            });
        }
        Ok(servers)
    }

    /// Every key, for tests and diagnostics.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// The db_proxy links of msg_server and http_msg_server, as both C++
/// `main`s read them: `DBServerIP<n>`/`DBServerPort<n>` (at least
/// [`DbServerLinks::MIN_SERVERS`]: the C++ refuses fewer) and
/// `ConcurrentDBConnCnt` links to each (not 0: the C++ divides by it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbServerLinks {
    /// The db_proxy_servers, in conf order.
    pub servers: Vec<ServerAddr>,
    /// `ConcurrentDBConnCnt`: links opened to each.
    pub concurrent: usize,
}

impl DbServerLinks {
    /// Fewest `DBServerIP<n>` entries a server starts with.
    pub const MIN_SERVERS: usize = 2;

    /// Reads the keys; `default_concurrent` when `ConcurrentDBConnCnt` is
    /// absent. Names the first missing or invalid key.
    pub fn read(
        c: &ConfigFileReader,
        default_concurrent: usize,
    ) -> Result<DbServerLinks, ConfigError> {
        let servers = c.read_server_config("DBServerIP", "DBServerPort")?;
        if servers.len() < Self::MIN_SERVERS {
            let n = servers.len() + 1;
            let key = if c.get(&format!("DBServerIP{n}")).is_none() {
                format!("DBServerIP{n}")
            } else {
                format!("DBServerPort{n}")
            };
            return Err(ConfigError::Missing { key });
        }
        let concurrent = c
            .get_parse::<usize>("ConcurrentDBConnCnt")?
            .unwrap_or(default_concurrent);
        if concurrent == 0 {
            return Err(ConfigError::invalid(
                "ConcurrentDBConnCnt",
                "0",
                "must be at least 1",
            ));
        }
        Ok(DbServerLinks {
            servers,
            concurrent,
        })
    }

    /// `db_server_list2`: each db_proxy repeated `ConcurrentDBConnCnt` times.
    pub fn links(&self) -> Vec<ServerAddr> {
        self.servers
            .iter()
            .flat_map(|s| (0..self.concurrent).map(move |_| s.clone()))
            .collect()
    }
}

/// One peer server from a numbered pair of keys (`serv_info_t`'s address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// Host name or IP, as written.
    pub ip: String,
    /// TCP port.
    pub port: u16,
}

/// `_TrimSpace`: strip spaces and tabs (only) from both ends.
fn trim_space(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// `CStrExplode`: split at `separator`, dropping empty items. (The C++ counts
/// an item for every separator but leaves the pointer of an empty one
/// unset, so `a;` or `a;;b` read garbage; we simply skip empty items.)
pub fn explode(s: &str, separator: char) -> Vec<String> {
    s.split(separator)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpp_quirks() {
        let c = ConfigFileReader::parse(
            "# comment\n\
             A=1\n\
             B = two words \t# trailing comment\n\
             C=x=y\n\
             D=\n\
             =orphan\n\
             E   \n\
             A=second\n\
             F=has#hash\n\
             \tG\t=\tg\t\n\
             H=cr\r\n\
             I=#only comment\n",
        );
        assert_eq!(c.get("A"), Some("1"), "first of duplicates wins");
        assert_eq!(c.get("B"), Some("two words"));
        assert_eq!(c.get("C"), Some("x=y"), "split at first =");
        assert_eq!(c.get("D"), None, "empty value skipped");
        assert_eq!(c.get(""), None);
        assert_eq!(c.get("E"), None);
        assert_eq!(c.get("F"), Some("has"), "cut at first #");
        assert_eq!(c.get("G"), Some("g"));
        assert_eq!(c.get("H"), Some("cr\r"), "only spaces and tabs trimmed");
        assert_eq!(c.get("I"), None);
    }

    #[test]
    fn typed_getters_name_the_key() {
        let c = ConfigFileReader::parse("Port=80x\nGood=8000\n");
        let e = c.require_parse::<u16>("Port").unwrap_err().to_string();
        assert!(e.contains("Port") && e.contains("80x"), "{e}");
        let e = c.require_parse::<u16>("Nope").unwrap_err().to_string();
        assert!(e.contains("Nope"), "{e}");
        assert_eq!(c.require_parse::<u16>("Good").unwrap(), 8000);
        assert_eq!(c.get_parse::<u16>("Nope").unwrap(), None);
    }

    #[test]
    fn server_config_reads_numbered_pairs() {
        let c = ConfigFileReader::parse(
            "DBServerIP1=127.0.0.1\nDBServerPort1=10600\n\
             DBServerIP2=10.0.0.2\nDBServerPort2=10601\n\
             DBServerIP4=10.0.0.4\nDBServerPort4=10604\n\
             RouteServerIP1=x\n",
        );
        let s = c.read_server_config("DBServerIP", "DBServerPort").unwrap();
        assert_eq!(
            s,
            vec![
                ServerAddr {
                    ip: "127.0.0.1".into(),
                    port: 10600
                },
                ServerAddr {
                    ip: "10.0.0.2".into(),
                    port: 10601
                },
            ]
        );
        assert!(c
            .read_server_config("RouteServerIP", "RouteServerPort")
            .unwrap()
            .is_empty());
        let bad = ConfigFileReader::parse("XIP1=a\nXPort1=port\n");
        assert!(bad.read_server_config("XIP", "XPort").is_err());
    }

    #[test]
    fn explode_splits_lists() {
        assert_eq!(explode("0.0.0.0", ';'), vec!["0.0.0.0"]);
        assert_eq!(explode("a;b", ';'), vec!["a", "b"]);
        assert_eq!(explode("a;;b;", ';'), vec!["a", "b"]);
    }
}
