//! The command line and start-up every server shares.
//!
//! The C++ servers read their `.conf` from the working directory and print
//! their version for `-v`. Ours do the same, and also take `-c PATH`,
//! `-h`/`--help` and `--version`.

use crate::config::{ConfigError, ConfigFileReader};
use std::path::PathBuf;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run with the config file at this path.
    Run(PathBuf),
    /// Print usage and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
}

/// Parses `args` (without the program name). `default_conf` is the C++
/// file name (`loginserver.conf`...), looked up in the working directory.
pub fn parse_args<I, S>(args: I, default_conf: &str) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut config = PathBuf::from(default_conf);
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-v" | "--version" => return Ok(Command::Version),
            "-c" | "--config" => {
                config = args
                    .next()
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("{arg} needs a path"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Command::Run(config))
}

/// The shared `main`: sets up logging, reads the command line and the config
/// file, then runs `serve`. Exits 0 for help/version, 2 for a bad command
/// line, 1 when the config cannot be read or `serve` fails (the error, which
/// names the key for config problems, is logged and printed).
pub fn run_server<F, E>(name: &str, default_conf: &str, serve: F) -> !
where
    F: FnOnce(ConfigFileReader) -> Result<(), E>,
    E: std::fmt::Display,
{
    crate::logging::init_logging();
    let cmd = parse_args(std::env::args().skip(1), default_conf);
    let path = match cmd {
        Ok(Command::Help) => {
            println!(
                "usage: {name} [-c CONFIG]   (default: ./{default_conf})\n       {name} --version"
            );
            std::process::exit(0);
        }
        Ok(Command::Version) => {
            println!("{name} (tt-rs) {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        Ok(Command::Run(path)) => path,
        Err(e) => {
            eprintln!("{name}: {e}; try -h");
            std::process::exit(2);
        }
    };
    let result = ConfigFileReader::load(&path)
        .map_err(|e: ConfigError| e.to_string())
        .and_then(|config| serve(config).map_err(|e| e.to_string()));
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            log::error!("{name}: {e}");
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms() {
        assert_eq!(
            parse_args(Vec::<String>::new(), "x.conf"),
            Ok(Command::Run("x.conf".into()))
        );
        assert_eq!(
            parse_args(["-c", "/etc/y.conf"], "x.conf"),
            Ok(Command::Run("/etc/y.conf".into()))
        );
        assert_eq!(parse_args(["-h"], "x.conf"), Ok(Command::Help));
        assert_eq!(parse_args(["--version"], "x.conf"), Ok(Command::Version));
        assert_eq!(parse_args(["-v"], "x.conf"), Ok(Command::Version));
        assert!(parse_args(["-c"], "x.conf").is_err());
        assert!(parse_args(["--bogus"], "x.conf").is_err());
    }
}
