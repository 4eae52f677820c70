//! The `cf-service-key-exporter` binary: parse flags, set up logging, bind, run.

#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use cf_service_key_exporter::binary::cli::{self, Cli, Command};
use cf_service_key_exporter::binary::config::{self, Config};
use cf_service_key_exporter::binary::{
    logging, report, Limits, PlanCommand, SystemClock, WebConfigFile,
};
use cf_service_key_exporter::ServeOptions;
use clap::Parser;

/// Exit codes: 0 fine, 1 `report --expiring-within` found a key, 2 bad configuration or usage
/// (or `report` could not read a foundation), 3 a runtime failure (cannot bind, server error,
/// cannot write the report). `report`'s own codes are documented in its module.
const EXIT_CONFIG: u8 = 2;
/// Serving failed: the report's code for a run that could not finish.
const EXIT_RUNTIME: u8 = report::EXIT_RUNTIME;

#[tokio::main]
pub async fn main() -> ExitCode {
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
            Ok(web) => Some(std::sync::Arc::new(
                web.allow_weakening(cli.web_config_allow_weakening),
            )),
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
        Some(Command::Report(args)) => {
            ExitCode::from(report::run(&config, args, Arc::new(SystemClock)).await)
        }
        None => match serve(
            config,
            &cli,
            ServeOptions {
                web_config,
                max_requests: Some(cli.web_max_requests),
                limits: Limits {
                    header_timeout: cli.web_header_timeout,
                    write_timeout: cli.web_write_timeout,
                    max_connections: cli.web_max_connections,
                },
                plan_command: plan_command(&cli),
            },
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::from(EXIT_RUNTIME)
            }
        },
    }
}

/// The configuration from its one source. `--demo` first starts the simulated foundation, whose
/// handle must live as long as the exporter that reads it.
async fn load_config(cli: &Cli) -> anyhow::Result<(Config, Option<Demo>)> {
    let args = &cli.connection;
    let source = cli::Source::of(args)?;
    if source != cli::Source::Demo {
        let env = |var: &str| std::env::var(var).ok();
        return Ok((cli::from_source(args, source, env)?, None));
    }
    let (demo, target) = start_demo().await?;
    let config = cli::demo(args, &target)?;
    tracing::info!(api = %target.api_url, "demo mode: serving a simulated Cloud Foundry foundation on loopback");
    Ok((config, Some(demo)))
}

#[cfg(feature = "demo")]
type Demo = cf_sim::Sim;

#[cfg(feature = "demo")]
async fn start_demo() -> anyhow::Result<(Demo, config::DemoTarget)> {
    let world = cf_sim::demo::world(time::OffsetDateTime::now_utc())
        .context("cannot build the demo foundation")?;
    let sim = cf_sim::Sim::start(world, cf_sim::Accounts::default())
        .await
        .context("cannot start the demo foundation")?;
    let mut target = config::DemoTarget::from(&sim);
    target.metadata_labels = cf_sim::demo::DEMO_METADATA_LABELS
        .split(',')
        .map(str::to_owned)
        .collect();
    target.lead_time_annotation = Some(cf_sim::demo::DEMO_LEAD_TIME_ANNOTATION.to_owned());
    target.successor_annotation = Some(cf_sim::demo::DEMO_SUCCESSOR_ANNOTATION.to_owned());
    Ok((sim, target))
}

#[cfg(not(feature = "demo"))]
type Demo = std::convert::Infallible;

#[cfg(not(feature = "demo"))]
async fn start_demo() -> anyhow::Result<(Demo, config::DemoTarget)> {
    anyhow::bail!("--demo: this build has no demo foundation (built without the `demo` feature)")
}

/// The rotate-plan command the landing page shows: the same source of configuration as this
/// process (`--demo`, `--config PATH`), else a hint to add the connection flags.
fn plan_command(cli: &Cli) -> PlanCommand {
    let args = &cli.connection;
    match (args.demo, &args.config) {
        (true, _) => PlanCommand {
            prefix: "cf-service-key-exporter report --demo".into(),
            hint: None,
        },
        (false, Some(path)) => PlanCommand {
            prefix: format!(
                "cf-service-key-exporter report --config {}",
                report::command(&[&path.display().to_string()])
            ),
            hint: None,
        },
        (false, None) => PlanCommand::default(),
    }
}

async fn serve(config: Config, cli: &Cli, options: ServeOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cli.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen_address))?;
    cf_service_key_exporter::run(config, listener, options, shutdown_signal()).await
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
