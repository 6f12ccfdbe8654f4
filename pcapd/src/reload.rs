//! SIGHUP: the whole new configuration or none of it. The file is read and validated, then
//! everything that could still fail is prepared (the new remote listener bound, its TLS
//! files read) before anything changes; only then the listener is swapped and every
//! capture takes the new self-exclusion and retention together. Settings fixed at start-up
//! (sockets, data directory, metrics address, request size) refuse the reload as a whole.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, Flags, RemoteListen};
use crate::registry::Registry;
use crate::Result;

/// Serves the API on one remote listener.
pub type ServeRemote =
    Arc<dyn Fn(tokio::net::TcpListener, RemoteTls) -> JoinHandle<()> + Send + Sync>;

/// What a remote listener needs to accept connections, and how to stop it.
pub struct RemoteTls {
    pub config: watch::Receiver<Arc<rustls::ServerConfig>>,
    pub stop: watch::Receiver<bool>,
}

/// The remote listener being served.
struct RemoteServer {
    settings: RemoteListen,
    tls: watch::Sender<Arc<rustls::ServerConfig>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The state that a reload changes besides the registry: the remote listener.
pub struct Reloader {
    registry: Arc<Registry>,
    flags: Flags,
    serve: ServeRemote,
    remote: Option<RemoteServer>,
    /// Servers of listeners given up, still finishing their calls.
    retired: Vec<JoinHandle<()>>,
}

impl Reloader {
    /// Takes over the remote listener bound at start-up, if any, and serves it.
    pub fn new(
        registry: Arc<Registry>,
        flags: Flags,
        serve: ServeRemote,
        bound: Option<(tokio::net::TcpListener, Arc<rustls::ServerConfig>)>,
    ) -> Reloader {
        let mut r = Reloader {
            registry,
            flags,
            serve,
            remote: None,
            retired: Vec::new(),
        };
        if let (Some((tcp, tls)), Some(settings)) = (bound, r.registry.settings().remote.clone()) {
            r.remote = Some(r.spawn(tcp, tls, settings));
        }
        r
    }

    /// Where the remote listener is, if there is one.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote.as_ref().map(|r| r.settings.addr)
    }

    fn spawn(
        &self,
        tcp: tokio::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
        settings: RemoteListen,
    ) -> RemoteServer {
        tracing::info!(listen = %settings.addr, "serving remote clients over mutual TLS");
        let (tls_tx, tls_rx) = watch::channel(tls);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = (self.serve)(
            tcp,
            RemoteTls {
                config: tls_rx,
                stop: stop_rx,
            },
        );
        RemoteServer {
            settings,
            tls: tls_tx,
            stop: stop_tx,
            task,
        }
    }

    /// Reads the config file again and applies all of it, or none of it with a log line
    /// saying why.
    pub async fn reload(&mut self) {
        match self.try_reload().await {
            Ok(()) => {}
            Err(why) => tracing::error!(
                "configuration not reloaded: {why}; the configuration in force stays as it was"
            ),
        }
    }

    async fn try_reload(&mut self) -> std::result::Result<(), String> {
        let flags = self.flags.clone();
        let new = tokio::task::spawn_blocking(move || Config::load(&flags))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let old = self.registry.settings();
        let fixed = old.needs_restart(&new);
        if !fixed.is_empty() {
            return Err(format!(
                "{} changed, which takes effect only when pcapd is restarted \
                 (systemctl restart pcapd)",
                fixed.join(", ")
            ));
        }
        // Everything that can fail happens before anything changes.
        let next = match (&self.remote, &new.remote) {
            (Some(cur), Some(want)) if cur.settings == *want => Change::Keep,
            (Some(cur), Some(want)) if cur.settings.addr == want.addr => {
                Change::Certificates(tls_config(want.clone()).await?)
            }
            (_, Some(want)) => {
                let tls = tls_config(want.clone()).await?;
                let tcp = bind(want.addr).map_err(|e| e.to_string())?;
                Change::Listen(tcp, tls, want.clone())
            }
            (Some(_), None) => Change::Stop,
            (None, None) => Change::Keep,
        };
        match next {
            Change::Keep => {}
            Change::Certificates(tls) => {
                let cur = self.remote.as_mut().expect("matched above");
                let _ = cur.tls.send(tls);
                cur.settings = new.remote.clone().expect("matched above");
                tracing::info!(listen = %cur.settings.addr, "remote listener: new certificates for new connections");
            }
            Change::Listen(tcp, tls, settings) => {
                self.retire();
                self.remote = Some(self.spawn(tcp, tls, settings));
            }
            Change::Stop => {
                self.retire();
                tracing::info!("remote access is off: the remote listener is closed");
            }
        }
        self.registry.reload(new).await;
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// Closes the remote listener; calls in progress on it finish.
    fn retire(&mut self) {
        if let Some(old) = self.remote.take() {
            let _ = old.stop.send(true);
            tracing::info!(listen = %old.settings.addr, "remote listener closed");
            self.retired.push(old.task);
        }
    }

    /// Stops every remote server and hands back their tasks to wait for.
    pub fn close(mut self) -> Vec<JoinHandle<()>> {
        self.retire();
        self.retired
    }
}

enum Change {
    Keep,
    Certificates(Arc<rustls::ServerConfig>),
    Listen(
        tokio::net::TcpListener,
        Arc<rustls::ServerConfig>,
        RemoteListen,
    ),
    Stop,
}

async fn tls_config(
    remote: RemoteListen,
) -> std::result::Result<Arc<rustls::ServerConfig>, String> {
    tokio::task::spawn_blocking(move || crate::tls::server::server_config(&remote))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    let l = crate::listen::tls::bind(addr)?;
    l.set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(l))
        .map_err(|e| crate::Error::io("remote listener", e))
}
