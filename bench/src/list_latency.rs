//! `pcapd-bench list-latency`: how long `List` takes while other clients start and stop
//! captures. A fresh pcapd on this host gets `--captures` captures on `lo`; two client
//! connections start and stop them in a loop (each half of them) while a third calls `List`
//! again and again, timing each call from request to response, for `--secs` seconds. A
//! `List` stuck behind a slow start shows up in the p99 and the max.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use pcap_core::api::v1 as api;
use pcap_core::connect::{connect_unix, Client};

use crate::daemon::{Bins, Pcapd};
use crate::stats::latency_summary;

/// First UDP port of the captures' filters (`udp port N`); nothing is sent to them.
const FIRST_PORT: u16 = 47_101;
/// Clients starting and stopping captures.
const CHURNERS: usize = 2;
/// Pause between two `List` calls, so that the lister does not take a core of its own.
const LIST_GAP: Duration = Duration::from_millis(5);

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct ListLatency {
    pub calls: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Start and Stop calls made meanwhile.
    pub churn_calls: u64,
    pub secs: f64,
}

/// Runs the measurement against a fresh pcapd in `dir`.
pub fn measure(bins: &Bins, dir: &Path, captures: u16, secs: f64) -> Result<ListLatency> {
    let pcapd = Pcapd::start_here(bins, dir)?;
    let mut ids = Vec::new();
    for i in 0..captures {
        ids.push(pcapd.init(&["lo", &format!("udp port {}", FIRST_PORT + i)])?);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let figures = runtime.block_on(run(pcapd.socket(), ids, Duration::from_secs_f64(secs)));
    drop(runtime);
    let figures = figures.map_err(|e| anyhow!("{e:#}; pcapd log:\n{}", pcapd.log_tail()))?;
    pcapd.shutdown()?;
    Ok(figures)
}

async fn run(socket: &Path, ids: Vec<u64>, length: Duration) -> Result<ListLatency> {
    let deadline = Instant::now() + length;
    let churned = Arc::new(AtomicU64::new(0));
    let mut churners = Vec::new();
    for k in 0..CHURNERS {
        let mine: Vec<u64> = ids.iter().copied().skip(k).step_by(CHURNERS).collect();
        let client = connect(socket).await?;
        churners.push(tokio::spawn(churn(client, mine, deadline, churned.clone())));
    }

    let mut lister = connect(socket).await?;
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        crate::guard::check()?;
        let t = Instant::now();
        lister
            .list(api::ListRequest {})
            .await
            .map_err(|s| anyhow!("List failed: {}", s.message()))?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(LIST_GAP).await;
    }
    for c in churners {
        c.await.context("a churning client panicked")??;
    }
    let calls = samples.len();
    let (p50_ms, p99_ms, max_ms) =
        latency_summary(&mut samples).ok_or_else(|| anyhow!("no List call was made"))?;
    Ok(ListLatency {
        calls,
        p50_ms,
        p99_ms,
        max_ms,
        churn_calls: churned.load(Ordering::Relaxed),
        secs: length.as_secs_f64(),
    })
}

/// Starts every capture of `ids`, then stops them all, until the deadline.
async fn churn(
    mut client: Client,
    ids: Vec<u64>,
    deadline: Instant,
    calls: Arc<AtomicU64>,
) -> Result<()> {
    let select = |id| api::SelectRequest {
        selector: Some(api::Selector {
            kind: Some(api::selector::Kind::Id(id)),
        }),
        stop: None,
    };
    while Instant::now() < deadline {
        for &id in &ids {
            client
                .start(select(id))
                .await
                .map_err(|s| anyhow!("Start of capture {id} failed: {}", s.message()))?;
            calls.fetch_add(1, Ordering::Relaxed);
        }
        for &id in &ids {
            client
                .stop(select(id))
                .await
                .map_err(|s| anyhow!("Stop of capture {id} failed: {}", s.message()))?;
            calls.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

async fn connect(socket: &Path) -> Result<Client> {
    connect_unix(socket)
        .await
        .map_err(|e| anyhow!("connect to {}: {e}", socket.display()))
}

/// The figures as a line of text.
pub fn report(captures: u16, f: &ListLatency) -> String {
    format!(
        "List latency over {} calls in {:.0} s while {CHURNERS} clients made {} Start/Stop \
         calls on {captures} captures on lo: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        f.calls, f.secs, f.churn_calls, f.p50_ms, f.p99_ms, f.max_ms
    )
}

/// Checks the options before anything starts.
pub fn check_options(captures: u16, secs: f64) -> Result<()> {
    if captures == 0 || captures > 1000 {
        bail!("--captures {captures} is out of range: use 1 to 1000 (default 20)");
    }
    if !(1.0..=600.0).contains(&secs) {
        bail!("--secs {secs} is out of range: use 1 to 600 seconds (default 10)");
    }
    Ok(())
}
