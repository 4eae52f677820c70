//! `cf-sim`: the simulated Cloud Foundry foundation as a process of its own, for an exporter
//! that has no simulator built in (the production image is built without `--demo`).
//!
//! ```text
//! cf-sim [--keys N] [--username NAME] [--password PASSWORD]
//! ```
//!
//! Serves the demo foundation ([`cf_sim::demo::world`]), or with `--keys N` a large one of N keys
//! ([`cf_sim::demo::large`]), on two loopback ports, then prints one JSON line on stdout:
//! `{"api_url": ..., "uaa_url": ..., "username": ..., "keys": N}`. It serves until it is killed
//! (SIGTERM's default action ends it; there is nothing to flush). The account is the
//! simulator's default unless the flags say otherwise.

use std::io::Write;
use std::process::ExitCode;

use cf_sim::{Accounts, Sim};

/// What the command line asks for.
struct Args {
    keys: Option<usize>,
    accounts: Accounts,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        keys: None,
        accounts: Accounts::default(),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--keys" => {
                let v = value()?;
                let n = v
                    .parse()
                    .map_err(|_| format!("--keys takes a number, not {v:?}"))?;
                parsed.keys = Some(n);
            }
            "--username" => parsed.accounts.username = value()?,
            "--password" => parsed.accounts.password = value()?,
            "-h" | "--help" => {
                return Err(
                    "usage: cf-sim [--keys N] [--username NAME] [--password PASSWORD]".into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cf-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let world = match args.keys {
        Some(n) => cf_sim::demo::large(n, now),
        None => cf_sim::demo::world(now),
    };
    let world = match world {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cf-sim: cannot build the foundation: {e}");
            return ExitCode::FAILURE;
        }
    };
    let keys = world.keys.len();
    let username = args.accounts.username.clone();
    let sim = match Sim::start(world, args.accounts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cf-sim: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let line = serde_json::json!({
        "api_url": sim.api_url.as_str(),
        "uaa_url": sim.uaa_url.as_str(),
        "username": username,
        "keys": keys,
    });
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    drop(out);
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(list.iter().map(|s| s.to_string()))
    }

    /// The error of a refused command line (Args has no Debug: it holds a password).
    fn refused(list: &[&str]) -> String {
        args(list).err().expect("refused")
    }

    #[test]
    fn flags_set_the_foundation_and_the_account() {
        let Ok(a) = args(&["--keys", "2000", "--username", "u", "--password", "p"]) else {
            panic!("refused")
        };
        assert_eq!(a.keys, Some(2000));
        assert_eq!(
            (a.accounts.username.as_str(), a.accounts.password.as_str()),
            ("u", "p")
        );
        let Ok(default) = args(&[]) else {
            panic!("refused")
        };
        assert_eq!(default.keys, None);
        assert_eq!(default.accounts.username, Accounts::default().username);
    }

    #[test]
    fn bad_arguments_are_refused_with_their_name() {
        assert!(refused(&["--keys", "many"]).contains("many"));
        assert!(refused(&["--keys"]).contains("--keys needs a value"));
        assert!(refused(&["--demo"]).contains("--demo"));
    }
}
