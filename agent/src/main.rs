//! `xvs-agent --config FILE`: the etcd discovery daemon beside xvsd.
//! SIGTERM or SIGINT revoke its lease (the other hosts drop it at once)
//! and exit 0; a config that does not load exits 1.

use std::path::PathBuf;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use xvs_agent::config::AgentConfig;

#[derive(Debug, Parser)]
#[command(name = "xvs-agent", version, about = "etcd host discovery for xvsd")]
struct Args {
    /// The agent's TOML config (re-read when it changes).
    #[arg(long, short)]
    config: PathBuf,
    /// Validate the config and exit.
    #[arg(long)]
    check: bool,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if args.check {
        match AgentConfig::load(&args.config) {
            Ok(_) => {
                println!("{}: ok", args.config.display());
                return;
            }
            Err(e) => {
                eprintln!("xvs-agent: {e}");
                std::process::exit(1);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let r = rt.block_on(async {
        let (tx, rx) = watch::channel(false);
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("signal: shutting down");
            let _ = tx.send(true);
            // Keep the sender alive so the agent sees `true`, not a
            // closed channel, and finishes its revoke.
            std::future::pending::<()>().await;
        });
        xvs_agent::agent::run(&args.config, rx).await
    });
    if let Err(e) = r {
        eprintln!("xvs-agent: {e}");
        std::process::exit(1);
    }
}
