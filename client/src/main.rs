//! `zdn`: the analysts' command line. See `zdn --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Analysts want results on stdout and only trouble on stderr.
    zdn_telemetry::init_logging(zdn_telemetry::LogFormat::Text, "warn");
    let cli = zdn_client::Cli::parse();
    let mut stdout = std::io::stdout();
    match zdn_client::run(cli, &mut stdout).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zdn: {}", zdn_client::describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
