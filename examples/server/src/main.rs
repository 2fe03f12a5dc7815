//! `roundtrip-server`: the reference server as a standalone process.
//!
//! Once bound it prints one line, `listening on http://HOST:PORT`, to stdout,
//! so that a harness can read the port it got. It then serves until SIGINT or
//! SIGTERM, or, with `--exit-on-stdin-eof`, until its standard input closes: a
//! harness that holds the pipe and dies takes the server with it. Logs go to
//! stderr, filtered by `RUST_LOG` (default `info`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use roundtrip_server::Config;
use tokio::sync::oneshot;
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: roundtrip-server [--host 127.0.0.1] [--port 0] [--database PATH] \
                     [--exit-on-stdin-eof]";

/// The parsed command line.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    host: IpAddr,
    port: u16,
    database: Option<PathBuf>,
    exit_on_stdin_eof: bool,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            database: None,
            exit_on_stdin_eof: false,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Serve(Args),
    Help,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Serve(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("roundtrip-server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let config = Config {
        addr: SocketAddr::new(args.host, args.port),
        database: args.database,
    };
    let server = match roundtrip_server::start(config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("roundtrip-server: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };

    let mut stdout = std::io::stdout().lock();
    let announced =
        writeln!(stdout, "listening on {}", server.base_url()).and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(err) = announced {
        eprintln!("roundtrip-server: cannot write to stdout: {err}");
        server.shutdown().await;
        return ExitCode::FAILURE;
    }

    let reason = wait_for_stop(args.exit_on_stdin_eof).await;
    tracing::info!(reason, "stopping");
    server.shutdown().await;

    ExitCode::SUCCESS
}

/// Parses the arguments after the program name; `--name value` and `--name=value` both work.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut parsed = Args::default();
    let mut args = args.into_iter();

    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };

        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--host" => {
                let host = value("--host")?;
                parsed.host = match host.as_str() {
                    "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    other => other
                        .parse()
                        .map_err(|_| format!("--host must be an IP address, not {other:?}"))?,
                };
            }
            "--port" => {
                let port = value("--port")?;
                parsed.port = port
                    .parse()
                    .map_err(|_| format!("--port must be 0 to 65535, not {port:?}"))?;
            }
            "--database" => parsed.database = Some(PathBuf::from(value("--database")?)),
            "--exit-on-stdin-eof" if inline.is_none() => parsed.exit_on_stdin_eof = true,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }

    Ok(Command::Serve(parsed))
}

/// Waits for SIGINT, SIGTERM or, when asked, the end of stdin; returns which it was.
async fn wait_for_stop(watch_stdin: bool) -> &'static str {
    let stdin_closed = async {
        if watch_stdin {
            stdin_eof().await
        } else {
            std::future::pending().await
        }
    };

    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        () = terminated() => "terminated",
        () = stdin_closed => "stdin closed",
    }
}

/// Resolves once stdin reaches end of file (or fails), read on a plain thread.
async fn stdin_eof() {
    let (closed, on_closed) = oneshot::channel();

    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = [0; 1024];
        while matches!(stdin.read(&mut buffer), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });

    let _ = on_closed.await;
}

#[cfg(unix)]
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};

    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for sigterm");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn defaults_to_loopback_and_any_port() {
        assert_eq!(parse(&[]), Ok(Command::Serve(Args::default())));
    }

    #[test]
    fn reads_every_flag_in_both_forms() {
        let command = parse(&[
            "--host",
            "0.0.0.0",
            "--port=8080",
            "--database",
            "a.db",
            "--exit-on-stdin-eof",
        ]);

        assert_eq!(
            command,
            Ok(Command::Serve(Args {
                host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 8080,
                database: Some(PathBuf::from("a.db")),
                exit_on_stdin_eof: true,
            }))
        );
    }

    #[test]
    fn rejects_unknown_and_incomplete_arguments() {
        assert!(parse(&["--verbose"]).is_err());
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--port", "70000"]).is_err());
        assert!(parse(&["--host", "example.com"]).is_err());
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(&["--port", "1", "--help"]), Ok(Command::Help));
    }
}
