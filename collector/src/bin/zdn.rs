//! `zdn`: the analysts' command line. See `zdn --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ZDN_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // A closed stderr (journald restarting, a reader gone) must not panic the process.
        .log_internal_errors(false)
        .init();
    let cli = zdn_collector::cli::Cli::parse();
    let mut stdout = std::io::stdout();
    match zdn_collector::cli::run(cli, &mut stdout).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zdn: {}", zdn_collector::cli::describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
