//! The todo resource: `/todos` and `/todos/{id}`.
//!
//! Reads go straight to the database. Writes (create, replace, update,
//! delete) are plain functions of a transaction and the request body, handed
//! to [`idempotency::apply`] so that a keyed write and its stored response
//! commit together. Those functions return every outcome as a [`Reply`],
//! problems included, because a 404 or a 422 is as much "the response" to a
//! keyed request as a 201 is, and must replay the same way.
//!
//! Request bodies are checked in two steps: first their shape (a JSON object
//! whose fields have the right types, else 400 malformed-body), then their
//! content (required fields present, titles not blank, else 422 validation).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::app::{AppState, read_body};
use crate::db::DbError;
use crate::idempotency::{self, Reply};
use crate::problem::{FieldError, Problem};

/// The largest todo body accepted.
const BODY_LIMIT: usize = 64 * 1024;

/// A todo as stored and as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Todo {
    id: i64,
    title: String,
    done: bool,
}

/// The fields a client may send; which are required depends on the method.
#[derive(Debug, Default, Deserialize)]
struct TodoFields {
    title: Option<String>,
    done: Option<bool>,
}

/// `GET /todos`: every todo, ordered by id.
pub(crate) async fn list(State(state): State<AppState>, uri: Uri) -> Response {
    let todos = state
        .db
        .run(|conn| {
            let mut statement = conn.prepare("SELECT id, title, done FROM todos ORDER BY id")?;
            let rows = statement.query_map([], todo_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await;

    match todos {
        Ok(todos) => Json(todos).into_response(),
        Err(err) => err.into_problem(uri.path()).into_response(),
    }
}

/// `GET /todos/{id}`: one todo, or 404.
pub(crate) async fn fetch(State(state): State<AppState>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    let Some(id) = todo_id(&path) else {
        return no_such_todo(&path).into_response();
    };

    let todo = state.db.run(move |conn| Ok(find(conn, id)?)).await;

    match todo {
        Ok(Some(todo)) => Json(todo).into_response(),
        Ok(None) => no_such_todo(&path).into_response(),
        Err(err) => err.into_problem(&path).into_response(),
    }
}

/// `POST /todos`: creates a todo; 201 with its `Location`.
pub(crate) async fn create(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    write(state, method, uri, headers, body, |tx, body, path| {
        let fields = match parse_fields(body, path) {
            Ok(fields) => fields,
            Err(problem) => return Ok(problem.into()),
        };

        let mut errors = Vec::new();
        check_title(fields.title.as_deref(), true, &mut errors);
        if !errors.is_empty() {
            return Ok(Problem::validation(path, errors).into());
        }

        let title = fields.title.unwrap_or_default();
        let done = fields.done.unwrap_or(false);
        tx.execute(
            "INSERT INTO todos (title, done) VALUES (?1, ?2)",
            params![title, done],
        )?;
        let todo = Todo {
            id: tx.last_insert_rowid(),
            title,
            done,
        };

        Ok(Reply::json(StatusCode::CREATED, &todo).with_location(format!("/todos/{}", todo.id)))
    })
    .await
}

/// `PUT /todos/{id}`: replaces a todo; both `title` and `done` are required.
pub(crate) async fn replace(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    write(state, method, uri, headers, body, |tx, body, path| {
        let fields = match parse_fields(body, path) {
            Ok(fields) => fields,
            Err(problem) => return Ok(problem.into()),
        };

        let mut errors = Vec::new();
        check_title(fields.title.as_deref(), true, &mut errors);
        if fields.done.is_none() {
            errors.push(FieldError::new("done", "is required"));
        }
        if !errors.is_empty() {
            return Ok(Problem::validation(path, errors).into());
        }

        let Some(id) = todo_id(path) else {
            return Ok(no_such_todo(path).into());
        };
        let todo = Todo {
            id,
            title: fields.title.unwrap_or_default(),
            done: fields.done.unwrap_or_default(),
        };

        let changed = tx.execute(
            "UPDATE todos SET title = ?2, done = ?3 WHERE id = ?1",
            params![todo.id, todo.title, todo.done],
        )?;
        if changed == 0 {
            return Ok(no_such_todo(path).into());
        }

        Ok(Reply::json(StatusCode::OK, &todo))
    })
    .await
}

/// `PATCH /todos/{id}`: changes the fields that are present.
pub(crate) async fn update(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    write(state, method, uri, headers, body, |tx, body, path| {
        let fields = match parse_fields(body, path) {
            Ok(fields) => fields,
            Err(problem) => return Ok(problem.into()),
        };

        let mut errors = Vec::new();
        check_title(fields.title.as_deref(), false, &mut errors);
        if !errors.is_empty() {
            return Ok(Problem::validation(path, errors).into());
        }

        let existing = match todo_id(path) {
            Some(id) => find(tx, id)?,
            None => None,
        };
        let Some(mut todo) = existing else {
            return Ok(no_such_todo(path).into());
        };

        if let Some(title) = fields.title {
            todo.title = title;
        }
        if let Some(done) = fields.done {
            todo.done = done;
        }
        tx.execute(
            "UPDATE todos SET title = ?2, done = ?3 WHERE id = ?1",
            params![todo.id, todo.title, todo.done],
        )?;

        Ok(Reply::json(StatusCode::OK, &todo))
    })
    .await
}

/// `DELETE /todos/{id}`: 204, or 404 when there was nothing to delete.
pub(crate) async fn remove(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    write(state, method, uri, headers, body, |tx, _body, path| {
        let Some(id) = todo_id(path) else {
            return Ok(no_such_todo(path).into());
        };

        let deleted = tx.execute("DELETE FROM todos WHERE id = ?1", [id])?;
        if deleted == 0 {
            return Ok(no_such_todo(path).into());
        }

        Ok(Reply::empty(StatusCode::NO_CONTENT))
    })
    .await
}

/// Reads the body and runs one write through the idempotency machinery.
async fn write<F>(
    state: AppState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    op: F,
) -> Response
where
    F: FnOnce(&Transaction<'_>, &[u8], &str) -> Result<Reply, DbError> + Send + 'static,
{
    let path = uri.path().to_owned();
    let body: Bytes = match read_body(body, BODY_LIMIT, &path).await {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };

    let op_path = path.clone();
    idempotency::apply(
        &state.db,
        &method,
        &path,
        &headers,
        body,
        move |tx, body| op(tx, body, &op_path),
    )
    .await
}

/// Takes the id out of `/todos/{id}`; anything but digits names no todo.
fn todo_id(path: &str) -> Option<i64> {
    let segment = path.strip_prefix("/todos/")?;
    if segment.is_empty() || !segment.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }

    segment.parse().ok()
}

fn no_such_todo(path: &str) -> Problem {
    let id = path.strip_prefix("/todos/").unwrap_or(path);

    Problem::not_found(path, format!("there is no todo with id {id}"))
}

/// Checks the body's shape: a JSON object whose known fields have the right types.
fn parse_fields(body: &[u8], instance: &str) -> Result<TodoFields, Problem> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| Problem::malformed_body(instance, format!("the body is not JSON: {err}")))?;

    if !value.is_object() {
        return Err(Problem::malformed_body(
            instance,
            "the body must be a JSON object",
        ));
    }

    serde_json::from_value(value).map_err(|err| Problem::malformed_body(instance, err.to_string()))
}

/// Checks a title: present when `required`, and never blank when present.
fn check_title(title: Option<&str>, required: bool, errors: &mut Vec<FieldError>) {
    match title {
        Some(title) if title.trim().is_empty() => {
            errors.push(FieldError::new("title", "must not be empty"));
        }
        None if required => errors.push(FieldError::new("title", "is required")),
        _ => {}
    }
}

fn find(conn: &Connection, id: i64) -> rusqlite::Result<Option<Todo>> {
    conn.query_row(
        "SELECT id, title, done FROM todos WHERE id = ?1",
        [id],
        todo_from_row,
    )
    .optional()
}

fn todo_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Todo> {
    Ok(Todo {
        id: row.get(0)?,
        title: row.get(1)?,
        done: row.get(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_digits() {
        assert_eq!(todo_id("/todos/42"), Some(42));
        assert_eq!(todo_id("/todos/+4"), None);
        assert_eq!(todo_id("/todos/abc"), None);
        assert_eq!(todo_id("/todos/"), None);
        assert_eq!(todo_id("/todos/99999999999999999999"), None);
    }

    #[test]
    fn arrays_and_wrong_types_are_malformed() {
        for body in [&br#"["x", true]"#[..], br#"{"title": 5}"#, b"not json", b""] {
            let problem = parse_fields(body, "/todos").unwrap_err();
            assert_eq!(problem.http_status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn blank_titles_fail_and_missing_ones_only_when_required() {
        let mut errors = Vec::new();

        check_title(Some("  "), false, &mut errors);
        check_title(None, true, &mut errors);
        check_title(None, false, &mut errors);
        check_title(Some("milk"), true, &mut errors);

        assert_eq!(
            errors,
            [
                FieldError::new("title", "must not be empty"),
                FieldError::new("title", "is required")
            ]
        );
    }
}
