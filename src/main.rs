//! The `cf-service-key-exporter` binary: parse flags, set up logging, bind, run.

use std::process::ExitCode;

use anyhow::Context;
use cf_service_key_exporter::cli::{Cli, Command};
use cf_service_key_exporter::config::{self, Config};
use cf_service_key_exporter::web::WebConfigFile;
use cf_service_key_exporter::{logging, report, sim, ServeOptions};
use clap::Parser;

/// Exit codes: 0 fine, 1 `report --expiring-within` found a key, 2 bad configuration or usage
/// (or `report` could not read a foundation), 3 a runtime failure (cannot bind, server error,
/// cannot write the report). `report`'s own codes are documented in its module.
const EXIT_CONFIG: u8 = 2;
const EXIT_RUNTIME: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `report` writes its table to stdout and keeps stderr for what went wrong.
    let default_level = match cli.command {
        Some(Command::Report(_)) => logging::QUIET_LEVEL,
        None => logging::DEFAULT_LEVEL,
    };
    logging::init(cli.log_format, default_level);

    // Checked before anything starts: a bad web config must not leave the endpoints unprotected.
    let web_config = match (&cli.command, &cli.web_config_file) {
        (None, Some(path)) => match WebConfigFile::load(path) {
            Ok(web) => Some(std::sync::Arc::new(web)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        _ => None,
    };

    // The demo's simulator must live as long as the exporter that reads it.
    let (config, _demo) = match load_config(&cli).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    match &cli.command {
        Some(Command::Report(args)) => ExitCode::from(report::run(&config, args).await),
        None => match serve(config, &cli, ServeOptions { web_config }).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::from(EXIT_RUNTIME)
            }
        },
    }
}

async fn load_config(cli: &Cli) -> anyhow::Result<(Config, Option<sim::Sim>)> {
    if cli.connection.demo {
        let world = sim::demo::world(time::OffsetDateTime::now_utc())
            .context("cannot build the demo foundation")?;
        let sim = sim::Sim::start(world, sim::Accounts::default())
            .await
            .context("cannot start the demo foundation")?;
        let mut foundation = sim.foundation_config("demo");
        foundation.refresh_interval = cli.connection.refresh_interval;
        foundation.full_refresh_interval = cli.connection.full_refresh_interval;
        foundation.details_concurrency = cli.connection.details_concurrency;
        foundation.service_plans = config::clean_plans(&cli.connection.service_plans);
        tracing::info!(api = %sim.api_url, "demo mode: serving a simulated Cloud Foundry foundation on loopback");
        let config = Config {
            foundations: vec![foundation],
            file: None,
            cache_file: cli.connection.cache_file.clone(),
        };
        return Ok((config, Some(sim)));
    }
    let config = config::from_args(&cli.connection, |var| std::env::var(var).ok())?;
    Ok((config, None))
}

async fn serve(config: Config, cli: &Cli, options: ServeOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cli.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen_address))?;
    cf_service_key_exporter::run_with(config, listener, options, shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
