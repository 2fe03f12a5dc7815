//! Message throughput through a realtime channel, next to raw tokio-tungstenite, in one run.
//!
//! Both clients talk to the same WebSocket server on loopback (tokio-tungstenite, plain `ws`,
//! on a runtime of its own) in two scenarios:
//!
//! - **echo**: the client sends `REALTIME_BENCH_MESSAGES` (default 100,000) text messages as fast as it can while reading the
//!   server's echoes; the time is until the last echo arrived.
//! - **push**: the client asks the server for as many messages and reads them; the time is
//!   from the request to the last message.
//!
//! Each scenario runs `ROUNDS` times per client, alternating, and the best round counts. The
//! channel goes through everything an app's messages go through: the outgoing queue, the
//! driver task, event delivery to a `Stream`. Run with
//! `cargo bench -p roundtrip --bench realtime_throughput`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use roundtrip::Client;
use roundtrip::realtime::{ChannelEvent, ChannelState, Message, Overflow};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;

static MESSAGES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

const DEFAULT_MESSAGES: usize = 100_000;
const ROUNDS: usize = 5;
const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn main() {
    // `REALTIME_BENCH_MESSAGES` makes a quick run possible, for instance under `cargo test`.
    let count = std::env::var("REALTIME_BENCH_MESSAGES")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(DEFAULT_MESSAGES);
    MESSAGES.set(count).unwrap();
    let addr = start_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!(
        "realtime throughput: {} messages of {} bytes, best of {ROUNDS}",
        messages(),
        PAYLOAD.len()
    );
    for scenario in [Scenario::Echo, Scenario::Push] {
        let (mut raw, mut channel) = (Duration::MAX, Duration::MAX);
        for _ in 0..ROUNDS {
            raw = raw.min(runtime.block_on(raw_round(addr, scenario)));
            channel = channel.min(runtime.block_on(channel_round(addr, scenario)));
        }
        let rate = |elapsed: Duration| messages() as f64 / elapsed.as_secs_f64();
        println!(
            "{:<5} raw tokio-tungstenite: {:>10.0} msg/s   roundtrip channel: {:>10.0} msg/s   ratio: {:.3}",
            scenario.name(),
            rate(raw),
            rate(channel),
            rate(channel) / rate(raw),
        );
    }
}

fn messages() -> usize {
    *MESSAGES.get().expect("set in main")
}

#[derive(Clone, Copy)]
enum Scenario {
    Echo,
    Push,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Echo => "echo",
            Scenario::Push => "push",
        }
    }
}

/// A WebSocket server on its own thread and runtime: echoes every message, and answers the
/// text `push N` with N messages.
fn start_server() -> SocketAddr {
    let (ready, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            ready.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(serve(stream));
            }
        });
    });
    addr.recv().unwrap()
}

async fn serve(stream: TcpStream) {
    stream.set_nodelay(true).unwrap();
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        let push = message
            .to_text()
            .ok()
            .and_then(|text| text.strip_prefix("push "))
            .and_then(|count| count.parse::<usize>().ok());
        let sent = match (push, message.is_text() || message.is_binary()) {
            (Some(count), _) => {
                let mut sent = Ok(());
                for _ in 0..count {
                    sent = socket.feed(WsMessage::text(PAYLOAD)).await;
                    if sent.is_err() {
                        break;
                    }
                }
                match sent {
                    Ok(()) => socket.flush().await,
                    error => error,
                }
            }
            (None, true) => socket.send(message).await,
            (None, false) => Ok(()),
        };
        if sent.is_err() {
            return;
        }
    }
}

async fn raw_round(addr: SocketAddr, scenario: Scenario) -> Duration {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let (mut sink, mut stream) = socket.split();

    let started = Instant::now();
    let writer = tokio::spawn(async move {
        match scenario {
            Scenario::Echo => {
                for _ in 0..messages() {
                    sink.feed(WsMessage::text(PAYLOAD)).await.unwrap();
                }
                sink.flush().await.unwrap();
            }
            Scenario::Push => sink
                .send(WsMessage::text(format!("push {}", messages())))
                .await
                .unwrap(),
        }
        sink
    });
    let mut received = 0;
    while received < messages() {
        match stream.next().await {
            Some(Ok(message)) if message.is_text() => received += 1,
            Some(Ok(_)) => {}
            other => panic!("raw socket ended: {other:?}"),
        }
    }
    let elapsed = started.elapsed();

    let mut sink = writer.await.unwrap();
    let _ = sink.close().await;
    elapsed
}

async fn channel_round(addr: SocketAddr, scenario: Scenario) -> Duration {
    let client = Client::builder(format!("http://{addr}")).build().unwrap();
    let channel = client
        .channel("/")
        .ping_interval(Duration::from_secs(60))
        .queue(messages(), Overflow::Fail)
        .event_buffer(1024)
        .open()
        .unwrap();
    let mut events = Box::pin(channel.events());
    while let Some(event) = events.next().await {
        if let ChannelEvent::State(ChannelState::Connected { .. }) = event {
            break;
        }
    }

    let started = Instant::now();
    match scenario {
        Scenario::Echo => {
            for _ in 0..messages() {
                channel.send_text(PAYLOAD).unwrap();
            }
        }
        Scenario::Push => channel.send_text(format!("push {}", messages())).unwrap(),
    }
    let mut received = 0;
    while received < messages() {
        match events.next().await {
            Some(ChannelEvent::Message(Message::Text(_))) => received += 1,
            Some(_) => {}
            None => panic!("channel ended"),
        }
    }
    let elapsed = started.elapsed();

    channel.close().await;
    elapsed
}
