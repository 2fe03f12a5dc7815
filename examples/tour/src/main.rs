//! The Roundtrip tour: starts the reference server on 127.0.0.1 and walks through what the SDK
//! does, one step at a time.
//!
//! Run it with `cargo run -p roundtrip-tour`.

use std::time::{Duration, Instant};

use std::sync::Arc;

use futures_util::StreamExt;
use roundtrip::auth::{
    KeychainStore, MemoryStore, OAuthConfig, Secret, SessionEvent, StoredTokens, TokenStore,
};
use roundtrip::push::{PushConfig, PushToken, RoundtripMessage};
use roundtrip::realtime::{ChannelEvent, ChannelState, Message};
use roundtrip::{CachePolicy, CacheSource, Client, Error, RetryPolicy};
use roundtrip_server::Config;
use serde_json::{Value, json};

type TourResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> TourResult {
    let storage = tempfile::tempdir()?;
    let server = roundtrip_server::start(Config {
        database: Some(storage.path().join("server.sqlite3")),
        ..Config::default()
    })
    .await?;
    println!("Roundtrip tour");
    println!("==============");
    println!("reference server: {}", server.base_url());
    println!(
        "client storage:   {}",
        storage.path().join("client").display()
    );

    let client = Client::builder(server.base_url())
        .storage_dir(storage.path().join("client"))
        .retry_policy(RetryPolicy::default().initial_delay(Duration::from_millis(50)))
        .build()?;
    let control = Client::builder(server.base_url())
        .retry_policy(RetryPolicy::never())
        .build()?;

    requests(&client).await?;
    lost_response(&client, &control).await?;
    retried_failure(&client, &control).await?;
    typed_error(&client).await?;
    cancellation(&client, &control).await?;
    offline(&client, &control).await?;
    sessions(&server.base_url(), &control).await?;
    caching(&client, &control).await?;
    push(&server.base_url(), &storage.path().join("app"), &control).await?;
    realtime(&server.base_url(), &control).await?;

    server.shutdown().await;
    println!("\nDone: every step behaved as described.");
    Ok(())
}

async fn requests(client: &Client) -> TourResult {
    step(1, "Plain requests");
    let health = client.get("/health").await?;
    println!("   GET /health -> {} {}", health.status(), health.text()?);

    let created = client
        .post("/todos")
        .json(&json!({ "title": "Take the tour" }))
        .await?;
    println!(
        "   POST /todos -> {} Location: {} {}",
        created.status(),
        created.header("location").unwrap_or("-"),
        created.text()?
    );

    let listed = client.get("/todos").query("limit", "10").await?;
    let todos: Vec<Value> = listed.json()?;
    println!(
        "   GET /todos -> {} with {} todo(s)",
        listed.status(),
        todos.len()
    );
    Ok(())
}

async fn lost_response(client: &Client, control: &Client) -> TourResult {
    step(2, "A lost response, retried safely with an idempotency key");
    fault(
        control,
        json!({ "path": "/todos", "method": "POST", "count": 1, "kind": "reset_after" }),
    )
    .await?;
    println!("   the server will commit the next POST, then reset the connection");
    let before = stats(control).await?["todos"].as_u64().unwrap_or(0);

    let created = client
        .post("/todos")
        .json(&json!({ "title": "Created exactly once" }))
        .generated_idempotency_key()
        .await?;
    let after = stats(control).await?["todos"].as_u64().unwrap_or(0);
    println!(
        "   POST /todos -> {} after {} attempts; replayed by the server: {}",
        created.status(),
        created.attempts(),
        created.header("idempotency-replayed").unwrap_or("false")
    );
    println!("   todos added on the server: {}", after - before);
    check(
        created.attempts() == 2 && after - before == 1,
        "the write was applied exactly once",
    )
}

async fn retried_failure(client: &Client, control: &Client) -> TourResult {
    step(3, "A retried failure");
    fault(
        control,
        json!({ "path": "/todos", "count": 2, "kind": "status", "status": 503 }),
    )
    .await?;
    println!("   the next 2 requests to /todos will fail with 503 Service Unavailable");

    let listed = client.get("/todos").await?;
    println!(
        "   GET /todos -> {} after {} attempts (backoff with full jitter between them)",
        listed.status(),
        listed.attempts()
    );
    check(
        listed.attempts() == 3,
        "the GET succeeded on its third attempt",
    )?;

    fault(
        control,
        json!({ "path": "/todos", "count": 1, "kind": "status", "status": 503 }),
    )
    .await?;
    let refused = client
        .post("/todos")
        .json(&json!({ "title": "No key" }))
        .await;
    let Err(error) = refused else {
        return Err("expected the POST to fail".into());
    };
    println!("   POST /todos without an idempotency key -> {error} (not retried: unsafe)");
    check(error.status() == Some(503), "the POST was not retried")
}

async fn typed_error(client: &Client) -> TourResult {
    step(4, "A typed error");
    let Err(error) = client.get("/todos/999").await else {
        return Err("expected /todos/999 to be missing".into());
    };
    println!("   GET /todos/999 -> {error}");
    if let Some(problem) = error.problem() {
        println!(
            "   problem type: {}, status: {:?}",
            problem.problem_type, problem.status
        );
    }
    println!("   retry class: {:?}", error.retry_class());
    check(error.status() == Some(404), "a missing todo is a 404")?;

    let Err(error) = client.post("/todos").json(&json!({ "title": "" })).await else {
        return Err("expected an empty title to be refused".into());
    };
    let errors = error
        .problem()
        .and_then(|problem| problem.extensions.get("errors"));
    println!("   POST /todos with an empty title -> {error}");
    println!(
        "   validation errors: {}",
        errors.cloned().unwrap_or_default()
    );
    Ok(())
}

async fn cancellation(client: &Client, control: &Client) -> TourResult {
    step(5, "Cancellation");
    let slow = client.get("/slow").query("ms", "5000").send();
    let outcome = tokio::time::timeout(Duration::from_millis(300), slow).await;
    println!(
        "   GET /slow?ms=5000 abandoned after 300 ms: {}",
        outcome.is_err()
    );

    let mut stats = stats(control).await?;
    for _ in 0..50 {
        if stats["slow"]["aborted"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats = self::stats(control).await?;
    }
    println!(
        "   the server saw the client go away: started {}, aborted {}, completed {}",
        stats["slow"]["started"], stats["slow"]["aborted"], stats["slow"]["completed"]
    );
    check(
        stats["slow"]["aborted"] == 1 && stats["slow"]["completed"] == 0,
        "the server saw the request cancelled",
    )
}

async fn offline(client: &Client, control: &Client) -> TourResult {
    step(6, "Offline");
    let before = stats(control).await?["total"].as_u64().unwrap_or(0);
    client.set_online(false);

    let started = Instant::now();
    // Bypass the cache here: step 8 shows what the cache does offline.
    let result = client
        .get("/health")
        .cache_policy(CachePolicy::Bypass)
        .await;
    let elapsed = started.elapsed();
    let after = stats(control).await?["total"].as_u64().unwrap_or(0);
    let Err(error @ Error::Offline) = &result else {
        return Err("expected the request to fail as offline".into());
    };
    println!("   with the device offline, GET /health -> \"{error}\" in {elapsed:.1?}");
    println!(
        "   requests that reached the server meanwhile: {}",
        after - before
    );
    check(after == before, "nothing reached the server while offline")?;

    client.set_online(true);
    let health = client.get("/health").await?;
    println!("   back online: GET /health -> {}", health.status());
    Ok(())
}

async fn sessions(base_url: &str, control: &Client) -> TourResult {
    step(
        7,
        "Sessions: sign-in, one refresh for many requests, sign-out",
    );
    let (store, kept_in): (Arc<dyn TokenStore>, &str) = match usable_keychain(base_url) {
        Some(store) => (Arc::new(store), "the platform keychain"),
        None => (
            Arc::new(MemoryStore::default()),
            "memory (the platform keychain refused)",
        ),
    };
    let client = Client::builder(base_url)
        .oauth(OAuthConfig::discover("roundtrip-demo", base_url)?.scopes(["todos"]))
        .token_store(store)
        .build()?;
    let session = client.session().ok_or("the client has no session")?;
    let events = tokio::spawn(session.events().take(3).collect::<Vec<_>>());

    session.sign_in_with_password("alice", "wonderland").await?;
    let me: Value = client.get("/me").await?.json()?;
    println!(
        "   signed in as {} with the password grant; tokens kept in {kept_in}",
        me["sub"]
    );

    control
        .post("/_control/oauth/expire-access-tokens")
        .json(&json!({}))
        .await?;
    println!("   the server expires every access token; now 200 requests at once:");
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/me").await.map(|r| r.status()) })
        })
        .collect();
    let mut succeeded = 0;
    for request in requests {
        if request.await?? == 200 {
            succeeded += 1;
        }
    }
    let refreshes = stats(control).await?["oauth"]["refresh_grants"].clone();
    println!("   {succeeded} of 200 succeeded; token refreshes the server saw: {refreshes}");
    check(
        succeeded == 200 && refreshes == 1,
        "one refresh served every request",
    )?;

    session.sign_out().await?;
    let revocations = stats(control).await?["oauth"]["revocations"].clone();
    let after = client.get("/me").await;
    println!("   signed out: revocations at the server: {revocations}");
    match &after {
        Err(error) => println!("   GET /me after sign-out -> {error}"),
        Ok(response) => println!("   GET /me after sign-out -> {}", response.status()),
    }
    check(
        matches!(after, Err(Error::SignInRequired)),
        "signed-out requests need sign-in",
    )?;

    let events = events.await?;
    println!("   session events: {events:?}");
    check(
        events
            == [
                SessionEvent::SignedIn,
                SessionEvent::Refreshed,
                SessionEvent::SignedOut,
            ],
        "the events tell the story",
    )
}

async fn caching(client: &Client, control: &Client) -> TourResult {
    step(
        8,
        "The HTTP cache: a fresh hit, a revalidation, an offline read",
    );
    let resource = json!({
        "body": "{\"motd\":\"Welcome\"}",
        "content_type": "application/json",
        "headers": { "cache-control": "max-age=0", "etag": "\"motd-1\"" }
    });
    control
        .put("/_control/cache/resources/motd")
        .json(&resource)
        .await?;
    let fresh = json!({
        "body": "[\"en\",\"de\"]",
        "content_type": "application/json",
        "headers": { "cache-control": "max-age=3600" }
    });
    control
        .put("/_control/cache/resources/languages")
        .json(&fresh)
        .await?;

    client.get("/cache/resources/languages").await?;
    let hit = client.get("/cache/resources/languages").await?;
    println!(
        "   GET /cache/resources/languages again -> {:?}, age {} s, network attempts {}",
        hit.cache().source,
        hit.cache().age.unwrap_or_default().as_secs(),
        hit.attempts()
    );

    client.get("/cache/resources/motd").await?;
    let revalidated = client.get("/cache/resources/motd").await?;
    let motd = &stats(control).await?["cache"]["motd"];
    println!(
        "   GET /cache/resources/motd (stale, has an ETag) -> revalidated: {}; the server sent {} \
         full response and {} 304",
        revalidated.cache().revalidated,
        motd["full"],
        motd["not_modified"]
    );

    client.set_online(false);
    let offline = client.get("/cache/resources/motd").await;
    client.set_online(true);
    let offline = offline?;
    println!(
        "   offline, GET /cache/resources/motd -> {} from {:?}, stale: {}",
        offline.text()?,
        offline.cache().source,
        offline.cache().stale
    );

    let languages = &stats(control).await?["cache"]["languages"];
    check(
        hit.cache().source == CacheSource::Cache && languages["requests"] == 1,
        "the fresh hit used no network",
    )?;
    check(
        revalidated.cache().revalidated,
        "the stale response was revalidated with a 304",
    )?;
    check(
        offline.cache().stale,
        "offline, the stale response was served and marked stale",
    )
}

async fn push(base_url: &str, storage: &std::path::Path, control: &Client) -> TourResult {
    step(9, "Push: a registration, a token rotation, a sign-out");
    let client = Client::builder(base_url)
        .storage_dir(storage)
        .oauth(OAuthConfig::discover("roundtrip-demo", base_url)?)
        .token_store(Arc::new(MemoryStore::default()))
        .push(PushConfig::new().app_version("1.0.0").locale("en-GB"))
        .build()?;
    let push = client.push().ok_or("the client has no push")?;
    let session = client.session().ok_or("the client has no session")?;
    session.sign_in_with_password("alice", "wonderland").await?;

    let first = PushToken::Fcm("cT0ur1st:APA91bFirstTokenOfTheTour".into());
    push.set_token(first.clone())?;
    let status = push.reconcile().await?;
    let devices = device_registry(control).await?;
    println!(
        "   the app hands over {first:?}; installation {}",
        &push.installation_id()[..8]
    );
    println!(
        "   the server registered it for {}: platform {}, app version {}, opt-in {}",
        devices[0]["user"], devices[0]["platform"], devices[0]["app_version"], devices[0]["opt_in"]
    );
    check(
        status.registered && devices.len() == 1 && devices[0]["user"] == "alice",
        "the device is registered for the signed-in user",
    )?;

    push.set_token(first)?;
    push.reconcile().await?;
    let unchanged = stats(control).await?["push"]["registrations"].clone();
    println!("   the same token again: registrations at the server stay at {unchanged}");

    let rotated = PushToken::Fcm("fR3shT0k:APA91bTheRotatedToken".into());
    push.set_token(rotated.clone())?;
    push.reconcile().await?;
    let devices = device_registry(control).await?;
    let registrations = stats(control).await?["push"]["registrations"].clone();
    println!("   Firebase rotates the token to {rotated:?}: registrations {registrations}");
    check(
        unchanged == 1
            && registrations == 2
            && devices[0]["token"] == "fR3shT0k:APA91bTheRotatedToken",
        "the rotated token replaced the old one, and an unchanged one cost nothing",
    )?;

    let message = json!({ "aps": { "content-available": 1 }, "roundtrip": { "kind": "sync" } });
    let incoming = RoundtripMessage::parse(&message).map(|m| m.kind().as_str().to_owned());
    println!("   an incoming {message} is addressed to Roundtrip: {incoming:?}");

    session.sign_out().await?;
    let push_stats = stats(control).await?["push"].clone();
    let left = device_registry(control).await?.len();
    println!(
        "   signed out: unregistrations {}, of which without credentials {}; devices left {left}",
        push_stats["unregistrations"], push_stats["anonymous_unregistrations"]
    );
    check(
        left == 0 && push_stats["anonymous_unregistrations"] == 0,
        "sign-out unregistered the device with the session's tokens, before dropping them",
    )
}

async fn device_registry(control: &Client) -> Result<Vec<Value>, Error> {
    control.get("/_control/devices").await?.json()
}

async fn realtime(base_url: &str, control: &Client) -> TourResult {
    step(10, "Realtime: a channel survives a dropped connection");
    let client = Client::builder(base_url)
        .oauth(OAuthConfig::discover("roundtrip-demo", base_url)?)
        .token_store(Arc::new(MemoryStore::default()))
        .build()?;
    client
        .session()
        .ok_or("the client has no session")?
        .sign_in_with_password("alice", "wonderland")
        .await?;
    let channel = client
        .channel("/ws")
        .ping_interval(Duration::from_secs(5))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(2))
        .resume(true)
        .open()?;
    let mut events = Box::pin(channel.events());
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .ok()
            .flatten()
            .ok_or("no channel event in time")
    };

    while !matches!(
        next().await?,
        ChannelEvent::State(ChannelState::Connected { .. })
    ) {}
    println!("   connected to /ws with the session's access token");
    let first = publish(control, json!({ "headline": "first" })).await?;
    if let ChannelEvent::Event { id, data } = next().await? {
        println!("   event {id}: {data}");
    }

    // Hold the next upgrade back a little, so the drop is visible.
    fault(
        control,
        json!({ "path": "/ws", "count": 1, "kind": "delay", "delay_ms": 300 }),
    )
    .await?;
    control
        .post("/_control/realtime/drop")
        .json(&json!({}))
        .await?;
    println!("   the server resets the connection (TCP RST)");
    let mut reconnected = false;
    let mut queued = false;
    let mut replayed = Vec::new();
    let mut echoed = None;
    while echoed.is_none() || replayed.is_empty() {
        match next().await? {
            ChannelEvent::State(ChannelState::Reconnecting {
                attempt,
                delay,
                cause,
            }) => {
                println!("   reconnecting: retry {attempt} in {delay:.0?} after \"{cause}\"");
                if queued {
                    continue;
                }
                queued = true;
                channel.send_text("sent while disconnected")?;
                let second = publish(control, json!({ "headline": "second" })).await?;
                println!(
                    "   meanwhile: {} message queued, event {second} published",
                    channel.queued_messages()
                );
            }
            ChannelEvent::State(ChannelState::Connected { .. }) => {
                reconnected = true;
                println!("   connected again, resuming after event {first}");
            }
            ChannelEvent::Event { id, data } => {
                println!("   event {id} (missed while down, replayed): {data}");
                replayed.push(id);
            }
            ChannelEvent::Message(Message::Text(text)) => {
                println!("   echo: {text}");
                echoed = Some(text);
            }
            _ => {}
        }
    }
    channel.close().await;
    let stats = stats(control).await?;
    println!(
        "   server: {} connections accepted, {} resumed",
        stats["realtime"]["connections_accepted"], stats["realtime"]["resumed"]
    );
    check(
        reconnected
            && replayed == [first + 1]
            && echoed.as_deref() == Some("sent while disconnected"),
        "the channel reconnected, flushed its queue and lost no event",
    )
}

async fn publish(control: &Client, data: Value) -> Result<u64, Error> {
    let published: Value = control
        .post("/_control/realtime/publish")
        .json(&json!({ "data": data }))
        .await?
        .json()?;
    Ok(published["id"].as_u64().unwrap_or_default())
}

/// The platform keychain, if it accepts a write here (a Linux session may lack a usable kernel
/// keyring; `scripts/test` runs its tests inside a fresh one).
fn usable_keychain(base_url: &str) -> Option<KeychainStore> {
    let store = KeychainStore::new("dev.roundtrip.tour", base_url).ok()?;
    let probe = StoredTokens {
        access_token: Secret::new("probe"),
        refresh_token: None,
        expires_at: None,
        scope: None,
        session_id: None,
    };
    store.save(&probe).ok()?;
    store.clear().ok()?;
    Some(store)
}

/// Fails the tour when what it just showed is not what it claims.
fn check(holds: bool, claim: &str) -> TourResult {
    if holds {
        Ok(())
    } else {
        Err(format!("tour check failed: {claim}").into())
    }
}

fn step(number: u32, title: &str) {
    println!("\n{number}. {title}");
}

async fn fault(control: &Client, rule: Value) -> Result<(), Error> {
    control
        .post("/_control/faults")
        .json(&rule)
        .await
        .map(|_| ())
}

async fn stats(control: &Client) -> Result<Value, Error> {
    control.get("/_control/stats").await?.json()
}
