//! The Roundtrip tour: starts the reference server on 127.0.0.1 and walks through what the SDK
//! does, one step at a time.
//!
//! Run it with `cargo run -p roundtrip-tour`.

use std::time::{Duration, Instant};

use roundtrip::{Client, Error, RetryPolicy};
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
    let result = client.get("/health").await;
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
