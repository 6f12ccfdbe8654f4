//! `pcapd`: the packet capture daemon.

use std::process::ExitCode;

use clap::Parser;
use pcapd::config::{Command, Config, Flags, TlsCommand};

fn main() -> ExitCode {
    init_tracing();
    let flags = Flags::parse();
    if let Some(Command::Tls(tls)) = &flags.command {
        return tls_command(tls);
    }
    let config = match Config::load(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pcapd: {e}");
            return ExitCode::from(64);
        }
    };
    // Spool files, the database and directories are not for others to read.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
    let bound = match pcapd::server::bind(&config) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    match pcapd::privileges::drop_privileges(&config.data_dir) {
        Ok(d) => {
            tracing::info!(privileges = ?d, "keeping only CAP_NET_RAW, CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_SYS_PTRACE")
        }
        Err(e) => {
            bound.remove_socket();
            return fail(e);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pcapd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(pcapd::server::run(config, flags, bound));
    // Everything that matters is flushed by now; do not linger on idle worker threads.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Reports a fatal error: status 64 for configuration problems, 1 otherwise.
fn fail(e: pcapd::Error) -> ExitCode {
    eprintln!("pcapd: {e}");
    match e {
        pcapd::Error::Config(_) => ExitCode::from(64),
        _ => ExitCode::FAILURE,
    }
}

/// Runs `pcapd tls ...`.
fn tls_command(cmd: &TlsCommand) -> ExitCode {
    let result = match cmd {
        TlsCommand::Init { out, hosts } => pcapd::tls::certs::init(out, hosts),
        TlsCommand::Client { out, name } => pcapd::tls::certs::client(out, name),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcapd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; without timestamps when journald (which adds its own) collects them.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, not in log files or the journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
