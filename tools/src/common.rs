//! Process plumbing shared by the binaries: logging and shutdown signals.

use tokio_util::sync::CancellationToken;

/// Sets up `tracing` to stderr, filtered by `RUST_LOG` (default `info`, openraft at `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // A closed stderr (say `magnetar broker 2>&1 | head`) must not turn every log
        // line into a panic: the process keeps running without its log.
        .log_internal_errors(false)
        .try_init();
}

/// Like [`init_tracing`] but defaulting to `warn`, for command-line tools whose output is
/// their result.
pub fn init_tracing_quiet() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // A closed stderr (say `magnetar broker 2>&1 | head`) must not turn every log
        // line into a panic: the process keeps running without its log.
        .log_internal_errors(false)
        .try_init();
}

/// Returns a token cancelled on the first SIGINT or SIGTERM. A second signal exits at once.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining (signal again to exit at once)");
        t.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs a binary's async body on a multi-threaded runtime with a shutdown token wired to
/// SIGINT/SIGTERM, and exits non-zero with `name: error` on failure.
pub fn run_main<F, Fut>(name: &str, body: F)
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    exit_quietly_on_broken_pipe();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async move { body(shutdown_on_signals()).await });
    if let Err(e) = result {
        eprintln!("{name}: {e:#}");
        std::process::exit(1);
    }
}

/// Makes printing to a closed stdout or stderr (`magnetar-admin ... | head`) end the
/// process quietly with status 141, as a shell reports SIGPIPE, instead of a panic with a
/// backtrace.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Splits a comma-separated address list.
pub fn split_addrs(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

/// Serves `GET /metrics` (Prometheus text) and `GET /health` on `addr` until `shutdown`,
/// for the processes without the broker's HTTP port (`magnetar metadata`, `magnetar bookie`).
pub async fn serve_metrics(
    addr: std::net::SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use axum::routing::get;

    let handle = magnetar_broker::admin::prometheus();
    let app = axum::Router::new()
        .route("/metrics", get(move || async move { handle.render() }))
        .route("/health", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind metrics listener {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics");
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics listener failed");
        }
    });
    Ok(())
}
