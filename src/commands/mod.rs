//! One module per subcommand; each returns the [`Exit`] it ends with.

mod accept;
mod attest;
mod check;
mod checkpoint;
mod controls;
mod export;
mod init;
mod keys;
mod ping;
mod prove;
mod report;
mod run;
mod sample;
mod soa;
mod status;
mod verify;
mod worker;

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::{Cli, Command};
use crate::config::Config;

pub async fn dispatch(cli: Cli) -> Result<Exit, Failure> {
    if cli.as_of.is_some()
        && !matches!(cli.command, Command::Status { .. } | Command::Report { .. })
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "--as-of applies to `status` and `report` only"
        )));
    }
    if let Command::Status { from, to }
    | Command::Report { from, to, .. }
    | Command::Export { from, to, .. }
    | Command::Sample { from, to, .. } = &cli.command
        && let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "--from ({}) must be before --to ({})",
            annexa_reports::time(*from),
            annexa_reports::time(*to)
        )));
    }
    if let Command::Init { dir } = &cli.command {
        return init::init(dir.as_deref());
    }
    if let Command::Verify {
        bundle: Some(bundle),
        keys: Some(keys),
        ..
    } = &cli.command
    {
        return verify::verify_bundle(bundle, keys, cli.json);
    }
    let config = Config::load(&cli.config).map_err(Failure::usage)?;
    for warning in &config.warnings {
        crate::cli::output::complain(cli.json, crate::ops::Level::Warn, warning);
    }
    if let Command::Controls = cli.command {
        return controls::controls(&config, cli.json);
    }
    if let Command::Ping {
        job,
        start,
        fail,
        message,
    } = &cli.command
    {
        return ping::ping(&config, job, *start, *fail, message.as_deref(), cli.json).await;
    }
    if let Command::Check { send_test } = cli.command {
        return check::check(config, send_test, cli.json).await;
    }
    refuse_placeholders(&config, &cli.command)?;
    let app = Annexa::open(config).await?;
    match cli.command {
        Command::Worker => worker::worker(app, cli.json).await,
        Command::Run => run::run(&app, cli.json).await,
        Command::Collect { names, all } => run::collect(&app, &names, all, cli.json).await,
        Command::Soa { csv } => soa::soa(&app, csv, cli.json).await,
        Command::Status { from, to } => {
            status::status(&app, cli.as_of, from.zip(to), cli.json).await
        }
        Command::Verify {
            trusted, rolling, ..
        } => verify::verify(&app, trusted.as_deref(), rolling, cli.json).await,
        Command::Checkpoint {
            acknowledge_rollback,
        } => checkpoint::checkpoint(&app, acknowledge_rollback.as_deref(), cli.json).await,
        Command::Export { from, to, out } => {
            export::export(&app, from.zip(to), &out, cli.json).await
        }
        Command::Sample {
            control,
            population,
            from,
            to,
            size,
            out,
            verify,
            record,
        } => {
            let request = match (verify, record, control, population) {
                (Some(file), ..) => sample::Request::Verify(file),
                (_, Some(file), ..) => sample::Request::Record(file),
                (_, _, Some(control), Some(population)) => sample::Request::Draw {
                    control,
                    population,
                    period: from.zip(to),
                    size,
                    out,
                },
                _ => unreachable!("clap requires --control and --population"),
            };
            sample::sample(&app, request, cli.json).await
        }
        Command::Prove { runs, since, out } => {
            prove::prove(&app, &runs, since.as_deref(), out.as_deref()).await
        }
        Command::Keys { action } => keys::keys(&app, action, cli.json).await,
        Command::Accept {
            control,
            code,
            subject,
            reason,
            until,
            by,
            list,
            revoke,
        } => {
            let request = match (list, revoke, control, code, reason, until, by) {
                (true, ..) => accept::Request::List,
                (_, Some(event), .., Some(by)) => accept::Request::Revoke { event, by },
                (_, None, Some(control), Some(code), Some(reason), Some(until), Some(by)) => {
                    accept::Request::Accept(crate::ledger::exceptions::Proposal {
                        control,
                        code,
                        subject,
                        reason,
                        by,
                        until,
                    })
                }
                _ => unreachable!("clap requires the arguments of each form"),
            };
            accept::accept(&app, request, cli.json).await
        }
        Command::Attach { list: true, .. } => attest::list(&app, cli.json).await,
        Command::Attach {
            files,
            control,
            title,
            owner,
            effective,
            expires,
            max_age,
            note,
            list: false,
        } => {
            let max_age = max_age
                .as_deref()
                .map(crate::base::parse_duration)
                .transpose()
                .map_err(|e| Failure::usage(anyhow::anyhow!("--max-age: {e}")))?;
            let request = crate::evidence::attested::Request {
                files,
                controls: control,
                title,
                owner,
                effective,
                expires,
                max_age,
                note,
            };
            attest::attach(&app, request, cli.json).await
        }
        Command::Review {
            id,
            approve,
            by,
            comment,
            ..
        } => {
            let decision = if approve {
                crate::evidence::attested::Decision::Approved
            } else {
                crate::evidence::attested::Decision::Rejected
            };
            attest::review(&app, &id, decision, &by, comment.as_deref(), cli.json).await
        }
        Command::Report {
            from,
            to,
            format,
            out,
        } => {
            let period = from.zip(to);
            report::report(&app, period, &format, out.as_deref(), cli.as_of, cli.json).await
        }
        Command::Init { .. } | Command::Controls | Command::Ping { .. } | Command::Check { .. } => {
            unreachable!("handled above")
        }
    }
}

/// `run`, `worker` and `collect` refuse a collector whose source is still a template's
/// placeholder: its run would only record a failure, in the ledger for good.
fn refuse_placeholders(config: &Config, command: &Command) -> Result<(), Failure> {
    let collectors: Vec<&crate::config::CollectorConfig> = match command {
        Command::Run | Command::Worker | Command::Collect { all: true, .. } => {
            config.collectors.iter().collect()
        }
        Command::Collect { names, .. } => {
            names.iter().filter_map(|n| config.collector(n)).collect()
        }
        _ => return Ok(()),
    };
    let problems: Vec<String> = collectors
        .into_iter()
        .flat_map(|c| {
            c.placeholders().into_iter().map(move |setting| {
                format!(
                    "collector `{}` ({}) still has the template's placeholder {setting}: set its source, or comment the collector out; nothing was run (`annexa check` lists every problem)",
                    c.name,
                    c.kind.name()
                )
            })
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure::usage(crate::config::ConfigError {
        path: config.path.clone(),
        problems,
    }))
}
