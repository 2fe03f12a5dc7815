//! Requests and responses: methods, JSON, query strings, headers.

use roundtrip::Client;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::Harness;

#[derive(Debug, Deserialize, PartialEq)]
struct Todo {
    id: u64,
    title: String,
    done: bool,
}

#[tokio::test]
async fn test_get_decodes_json() {
    let harness = Harness::start().await;

    let response = harness.client.get("/health").send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.attempts(), 1);
    assert_eq!(response.json::<Value>().unwrap(), json!({ "status": "ok" }));
}

#[tokio::test]
async fn test_crud_round_trip_with_every_method() {
    let harness = Harness::start().await;
    let client = &harness.client;

    let created = client
        .post("/todos")
        .json(&json!({ "title": "Write tests" }))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let todo: Todo = created.json().unwrap();
    let location = created.header("location").unwrap().to_owned();
    assert_eq!(location, format!("/todos/{}", todo.id));

    let replaced: Todo = client
        .put(&location)
        .json(&json!({ "title": "Write more tests", "done": false }))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(replaced.title, "Write more tests");

    let patched: Todo = client
        .patch(&location)
        .json(&json!({ "done": true }))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        patched,
        Todo {
            id: todo.id,
            title: "Write more tests".into(),
            done: true
        }
    );

    let listed: Vec<Todo> = client.get("/todos").await.unwrap().json().unwrap();
    assert_eq!(listed, [patched]);

    assert_eq!(client.delete(&location).await.unwrap().status(), 204);
    let gone = client.get(&location).await.unwrap_err();
    assert_eq!(gone.status(), Some(404));
}

#[tokio::test]
async fn test_head_returns_headers_without_a_body() {
    let harness = Harness::start().await;
    harness.create_todo("one").await;

    let response = harness.client.head("/todos").await.unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.bytes().is_empty());
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn test_query_parameters_are_encoded_and_appended() {
    let harness = Harness::start().await;

    let echoed: Value = harness
        .client
        .get("/echo?page=2")
        .query("q", "milk & eggs")
        .query("done", "false")
        .await
        .unwrap()
        .json()
        .unwrap();

    assert_eq!(echoed["query"], "page=2&q=milk+%26+eggs&done=false");
}

#[tokio::test]
async fn test_default_headers_user_agent_and_overrides() {
    let harness = Harness::with_client(|builder| {
        builder
            .user_agent("tests/1.0")
            .default_header("x-app", "default")
            .default_header("accept-language", "de")
    })
    .await;

    let echoed: Value = harness
        .client
        .get("/echo")
        .header("x-app", "override")
        .await
        .unwrap()
        .json()
        .unwrap();

    assert_eq!(echoed["headers"]["user-agent"], "tests/1.0");
    assert_eq!(echoed["headers"]["x-app"], "override");
    assert_eq!(echoed["headers"]["accept-language"], "de");
}

#[tokio::test]
async fn test_raw_bodies_are_sent_as_given() {
    let harness = Harness::start().await;

    let echoed: Value = harness
        .client
        .post("/echo")
        .body("plain words", "text/plain; charset=utf-8")
        .await
        .unwrap()
        .json()
        .unwrap();

    assert_eq!(echoed["body"], "plain words");
    assert_eq!(
        echoed["headers"]["content-type"],
        "text/plain; charset=utf-8"
    );
}

#[tokio::test]
async fn test_compressed_responses_are_decoded() {
    let harness = Harness::start().await;
    for n in 0..20 {
        harness
            .create_todo(&format!("todo number {n} with a long repetitive title"))
            .await;
    }

    let response = harness.client.get("/echo").await.unwrap();
    let echoed: Value = response.json().unwrap();
    let accepted = echoed["headers"]["accept-encoding"].as_str().unwrap();
    assert!(
        accepted.contains("gzip") && accepted.contains("br"),
        "{accepted}"
    );

    let todos: Vec<Todo> = harness.client.get("/todos").await.unwrap().json().unwrap();
    assert_eq!(todos.len(), 20);
}

#[tokio::test]
async fn test_base_url_path_prefixes_relative_targets() {
    let harness = Harness::start().await;
    let client = Client::builder(format!("{}/todos/", harness.server.base_url()))
        .build()
        .unwrap();
    let todo = harness.create_todo("nested").await;

    let fetched: Value = client
        .get(&todo["id"].to_string())
        .await
        .unwrap()
        .json()
        .unwrap();

    assert_eq!(fetched["title"], "nested");
}

#[cfg(feature = "xml")]
#[tokio::test]
async fn test_xml_bodies_decode_with_the_feature() {
    #[derive(Deserialize)]
    struct XmlTodo {
        id: u64,
        title: String,
        done: bool,
    }
    let harness = Harness::start().await;

    let todo: XmlTodo = harness.client.get("/xml").await.unwrap().xml().unwrap();

    assert_eq!(
        (todo.id, todo.title.as_str(), todo.done),
        (1, "Read the contract", false)
    );
}
