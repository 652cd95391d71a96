use std::process::ExitCode;

use clap::Parser;

use annexa::cli::{Cli, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    // The logger starts before the config is loaded: `[log]` is read on its own.
    let settings = annexa::config::log_settings(&cli.config);
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANNEXA_LOG")
        .ok()
        .or_else(|| {
            let level = settings.level.as_deref()?;
            tracing_subscriber::EnvFilter::try_new(level).ok()
        })
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = cli.log_format.or(settings.format);
    match format.unwrap_or(if json {
        LogFormat::Json
    } else {
        LogFormat::Text
    }) {
        LogFormat::Json => logs.json().init(),
        // Colours only on a terminal, not in journald or a log file.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            let failure = annexa::cli::exit::Failure::from(anyhow::anyhow!(
                "cannot start the async runtime: {e}"
            ));
            print_failure(&failure, json);
            return ExitCode::from(failure.exit.code());
        }
    };
    let exit = match runtime.block_on(annexa::commands::dispatch(cli)) {
        Ok(exit) => exit,
        Err(failure) => {
            print_failure(&failure, json);
            failure.exit
        }
    };
    ExitCode::from(exit.code())
}

/// An error on stderr: `error: …` for people, or one JSON object with --json.
fn print_failure(failure: &annexa::cli::exit::Failure, json: bool) {
    if json {
        let causes: Vec<String> = failure
            .error
            .chain()
            .skip(1)
            .map(|e| e.to_string())
            .collect();
        eprintln!(
            "{}",
            serde_json::json!({
                "error": {
                    "message": failure.error.to_string(),
                    "causes": causes,
                    "text": format!("{:#}", failure.error),
                },
                "exit": failure.exit.code(),
            })
        );
    } else {
        eprintln!("error: {:#}", failure.error);
    }
}
