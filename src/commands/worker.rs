//! `annexa worker`: the scheduler and its HTTP endpoint, until SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::Printer;
use crate::db::Engine;
use crate::ops::Output as _;
use crate::ops::scheduler::Worker;

pub async fn worker(app: Annexa, json: bool) -> Result<Exit, Failure> {
    let app = Arc::new(app);
    let listen = app.config.worker.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}: set another address in [worker] listen")
        })?;
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });

    let printer = std::sync::Arc::new(Printer { json });
    let worker = Worker::new(app.clone(), printer.clone());
    let mut server_stop = stop.clone();
    let router = crate::ops::server::router(app.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|s| *s).await;
            })
            .await
    });
    printer.note(&format!(
        "annexa worker {} serving http://{listen} (/health, /ready, /metrics, POST /ping/{{job}}); {} collector(s) scheduled",
        worker.holder,
        app.config.collectors.len()
    ));

    // On SQLite one worker runs at a time; it holds the `worker` lease while it does.
    let mut wait = stop.clone();
    let single = if app.db.engine() == Engine::Sqlite {
        match worker.hold_single_lease(&mut wait).await? {
            Some(lease) => Some(lease),
            None => return Ok(Exit::Ok),
        }
    } else {
        None
    };
    let renewal = single.clone().map(|lease| {
        let app = app.clone();
        tokio::spawn(
            async move { match crate::ops::scheduler::keep_renewing(&app, &lease).await {} },
        )
    });

    let result = worker.run(stop).await;
    if let Some(r) = renewal {
        r.abort();
    }
    if let Some(lease) = single {
        app.db.release_lease(&lease, app.clock.now()).await?;
    }
    let _ = server.await;
    result?;
    printer.note("stopped");
    Ok(Exit::Ok)
}

/// SIGTERM (systemd, docker stop, kill) or Ctrl-C.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
