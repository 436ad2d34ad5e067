//! `msfs.conf`: the seven keys `main.cpp` reads, and the rewrite of
//! `FileCnt` on the way out (`CConfigFileReader::SetConfigValue`).
//!
//! Differences from the C++: every key is required and checked (the C++
//! `atoi`s whatever is there); the rewrite changes only the `FileCnt` value
//! and keeps every other line and comment (the C++ writes its map back,
//! dropping comments and reordering keys), and it is atomic: a temporary
//! file in the same folder, synced, then renamed over the conf.

use base::config::{ConfigError, ConfigFileReader};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The conf key that counts stored files.
pub const FILE_CNT: &str = "FileCnt";

/// The keys of `msfs.conf`, all required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsfsConfig {
    /// `ListenIP`: a `;` list.
    pub listen_ip: String,
    /// `ListenPort`.
    pub listen_port: u16,
    /// `BaseDir`, relative to the working directory.
    pub base_dir: PathBuf,
    /// `FileCnt`: files stored so far; the next one is number `FileCnt`.
    pub file_cnt: u64,
    /// `FilesPerDir` (> 0).
    pub files_per_dir: u64,
    /// `GetThreadCount` (> 0): download workers.
    pub get_threads: usize,
    /// `PostThreadCount` (> 0): upload workers.
    pub post_threads: usize,
}

fn positive<T: PartialOrd + Default>(key: &str, value: T, text: &str) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            key: key.into(),
            value: text.into(),
            reason: "must be greater than 0".into(),
        })
    }
}

impl MsfsConfig {
    /// Reads every key, failing on the first missing or invalid one.
    pub fn from_conf(conf: &ConfigFileReader) -> Result<MsfsConfig, ConfigError> {
        let count = |key: &str| -> Result<u64, ConfigError> {
            let v: u64 = conf.require_parse(key)?;
            positive(key, v, conf.get(key).unwrap_or(""))
        };
        Ok(MsfsConfig {
            listen_ip: conf.require("ListenIP")?.to_string(),
            listen_port: conf.require_parse("ListenPort")?,
            base_dir: PathBuf::from(conf.require("BaseDir")?),
            file_cnt: conf.require_parse(FILE_CNT)?,
            files_per_dir: count("FilesPerDir")?,
            get_threads: count("GetThreadCount")? as usize,
            post_threads: count("PostThreadCount")? as usize,
        })
    }
}

/// The conf text with `key`'s value replaced by `value` (on the line the
/// reader takes it from: the first), its comment kept; appended when the
/// key is absent.
pub fn with_value(text: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut done = false;
    for line in text.split_inclusive('\n') {
        if !done {
            let (content, comment) = match line.find('#') {
                Some(i) => line.split_at(i),
                None => (line, ""),
            };
            if let Some((k, v)) = content.split_once('=') {
                if k.trim_matches([' ', '\t']) == key
                    && !v.trim_matches([' ', '\t', '\n']).is_empty()
                {
                    let newline = if comment.is_empty() && line.ends_with('\n') {
                        "\n"
                    } else {
                        ""
                    };
                    let gap = if comment.is_empty() { "" } else { " " };
                    out.push_str(&format!("{key}={value}{gap}{comment}{newline}"));
                    done = true;
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    if !done {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{key}={value}\n"));
    }
    out
}

/// `SetConfigValue(key, value)` on the file at `path`, atomically.
pub fn rewrite_value(path: &Path, key: &str, value: &str) -> std::io::Result<()> {
    let text = std::fs::read(path)?;
    let text = with_value(&String::from_utf8_lossy(&text), key, value);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("msfs.conf".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str =
        "ListenIP=0.0.0.0\t\t#可以监听多个IP,用;分割\nListenPort=8700\nBaseDir=./tmp\n\
                        FileCnt=0\nFilesPerDir=30000\nGetThreadCount=32\nPostThreadCount=1\n";

    #[test]
    fn reads_the_reference_conf() {
        let c = MsfsConfig::from_conf(&ConfigFileReader::parse(FULL)).unwrap();
        assert_eq!(c.listen_ip, "0.0.0.0");
        assert_eq!(c.listen_port, 8700);
        assert_eq!(c.base_dir, PathBuf::from("./tmp"));
        assert_eq!((c.file_cnt, c.files_per_dir), (0, 30000));
        assert_eq!((c.get_threads, c.post_threads), (32, 1));
    }

    #[test]
    fn every_key_is_required_and_named() {
        for key in [
            "ListenIP",
            "ListenPort",
            "BaseDir",
            "FileCnt",
            "FilesPerDir",
            "GetThreadCount",
            "PostThreadCount",
        ] {
            let text: String = FULL
                .lines()
                .filter(|l| !l.starts_with(&format!("{key}=")))
                .map(|l| format!("{l}\n"))
                .collect();
            let e = MsfsConfig::from_conf(&ConfigFileReader::parse(&text)).unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
        for (key, bad) in [
            ("GetThreadCount", "0"),
            ("PostThreadCount", "-1"),
            ("FilesPerDir", "0"),
            ("FileCnt", "x"),
        ] {
            let text = FULL.replace(&format!("{key}="), &format!("{key}={bad}#"));
            let e = MsfsConfig::from_conf(&ConfigFileReader::parse(&text)).unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn the_rewrite_changes_only_the_count() {
        let text = "# msfs\nListenPort=8700\nFileCnt = 7 # files so far\nFileCnt=9\nBaseDir=./tmp";
        let out = with_value(text, FILE_CNT, "12");
        assert_eq!(
            out,
            "# msfs\nListenPort=8700\nFileCnt=12 # files so far\nFileCnt=9\nBaseDir=./tmp"
        );
        assert_eq!(ConfigFileReader::parse(&out).get(FILE_CNT), Some("12"));
        assert_eq!(
            with_value("A=1\nFileCnt=3\n", FILE_CNT, "4"),
            "A=1\nFileCnt=4\n"
        );
        assert_eq!(with_value("A=1", FILE_CNT, "4"), "A=1\nFileCnt=4\n");
        let dir = std::env::temp_dir().join(format!("msfs-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("msfs.conf");
        std::fs::write(&path, FULL).unwrap();
        rewrite_value(&path, FILE_CNT, "42").unwrap();
        let back = MsfsConfig::from_conf(&ConfigFileReader::load(&path).unwrap()).unwrap();
        assert_eq!(back.file_cnt, 42);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temp file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
