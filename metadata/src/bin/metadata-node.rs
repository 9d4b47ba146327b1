//! A bare metadata node process, used by the process-level crash tests
//! (`tests/process_crash.rs`); operators run `magnetar metadata` instead.
//!
//! Usage: `metadata-node --node-id N --listen ADDR --data-dir DIR [--members 1=A,2=B,3=C]`

use std::collections::BTreeMap;
use std::process::ExitCode;

use magnetar_metadata::{run, MetadataConfig};
use tokio_util::sync::CancellationToken;

fn parse() -> Result<(MetadataConfig, String), String> {
    let mut args = std::env::args().skip(1);
    let (mut id, mut listen, mut dir, mut members) = (None, None, None, BTreeMap::new());
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--node-id" => {
                id = Some(
                    value
                        .parse::<u64>()
                        .map_err(|e| format!("--node-id: {e}"))?,
                )
            }
            "--listen" => listen = Some(value),
            "--data-dir" => dir = Some(value),
            "--members" => {
                for part in value.split(',').filter(|p| !p.is_empty()) {
                    let (i, a) = part.split_once('=').ok_or(format!("bad member {part}"))?;
                    let i = i.parse::<u64>().map_err(|e| format!("member id: {e}"))?;
                    members.insert(i, a.to_string());
                }
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let id = id.ok_or("--node-id is required")?;
    let listen = listen.ok_or("--listen is required")?;
    let dir = dir.ok_or("--data-dir is required")?;
    let mut config = MetadataConfig::new(id, dir, members);
    config.heartbeat_ms = 50;
    config.election_timeout_ms = 300;
    Ok((config, listen))
}

fn main() -> ExitCode {
    let (config, listen) = match parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("metadata-node: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("metadata-node: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("bind {listen}: {e}"))?;
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            s.cancel();
        });
        run(config, listener, shutdown)
            .await
            .map_err(|e| e.to_string())
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("metadata-node: {e}");
            ExitCode::FAILURE
        }
    }
}
