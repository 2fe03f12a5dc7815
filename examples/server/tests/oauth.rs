//! The OAuth 2.0 part of the contract, end to end: a real server on loopback
//! and a real HTTP client, one module per endpoint or flow. Every test starts
//! its own server with its own in-memory database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header;
use reqwest::{Client, Response, StatusCode};
use roundtrip_server::{Config, RunningServer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "roundtrip-demo";
const REDIRECT_URI: &str = "roundtrip-demo:/callback";
const VERIFIER: &str = "a-perfectly-good-code-verifier-of-more-than-43-chars";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A running server with a client that shows redirects instead of following them.
struct TestServer {
    server: RunningServer,
    client: Client,
}

impl TestServer {
    async fn start() -> Self {
        install_crypto_provider();
        let server = roundtrip_server::start(Config::default())
            .await
            .expect("server starts");
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds");

        Self { server, client }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request succeeds")
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");

        read_json(response).await
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(path))
            .header(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .expect("request succeeds")
    }

    async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request succeeds")
    }

    async fn control(&self, path: &str, body: Value) {
        let response = self.post_json(path, &body).await;

        assert_eq!(response.status(), StatusCode::NO_CONTENT, "POST {path}");
    }

    async fn token(&self, form: &[(&str, &str)]) -> Response {
        self.post_form("/oauth/token", form).await
    }

    /// Tokens from the password grant, asserted to succeed.
    async fn password_tokens(&self, username: &str, password: &str) -> Tokens {
        let response = self
            .token(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("client_id", CLIENT_ID),
            ])
            .await;

        Tokens::from_response(response).await
    }

    /// A refresh request, whatever its outcome.
    async fn refresh(&self, refresh_token: &str) -> Response {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
        ])
        .await
    }

    async fn me(&self, access_token: &str) -> Response {
        self.client
            .get(self.url("/me"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request succeeds")
    }

    /// Runs `/oauth/authorize` with `login_hint` and returns the redirect's parameters.
    async fn authorize(&self, extra: &[(&str, &str)]) -> (Response, HashMap<String, String>) {
        let challenge = challenge(VERIFIER);
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("state", "xyz"),
            ("code_challenge_method", "S256"),
            ("code_challenge", challenge.as_str()),
        ];
        // A parameter in `extra` replaces the default of the same name.
        query.retain(|(name, _)| !extra.iter().any(|(extra, _)| extra == name));
        query.extend_from_slice(extra);
        let path = format!(
            "/oauth/authorize?{}",
            serde_urlencoded::to_string(&query).unwrap()
        );

        let response = self.get(&path).await;
        let params = redirect_params(&response);
        (response, params)
    }

    /// A fresh code for alice, with the default verifier.
    async fn code(&self) -> String {
        let (response, params) = self.authorize(&[("login_hint", "alice")]).await;
        assert_eq!(response.status(), StatusCode::FOUND);

        params["code"].clone()
    }

    async fn exchange(&self, code: &str, verifier: &str) -> Response {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", CLIENT_ID),
            ("code_verifier", verifier),
        ])
        .await
    }

    async fn oauth_stats(&self) -> Value {
        self.get_json("/_control/stats").await["oauth"].clone()
    }

    async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A successful token response.
#[derive(Debug)]
struct Tokens {
    access: String,
    refresh: String,
    body: Value,
}

impl Tokens {
    async fn from_response(response: Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-store");
        assert!(header_of(&response, header::CONTENT_TYPE).starts_with("application/json"));

        let body = read_json(response).await;
        assert_eq!(body["token_type"], "Bearer");
        Self {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            body,
        }
    }
}

fn install_crypto_provider() {
    static INSTALL: Once = Once::new();

    INSTALL.call_once(|| {
        // reqwest is built without a default provider; plain HTTP needs none,
        // but building a client still looks for one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn read_json(response: Response) -> Value {
    let body = response.bytes().await.expect("body arrives");

    serde_json::from_slice(&body).expect("body is JSON")
}

fn header_of(response: &Response, name: header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The query parameters of a redirect's `Location`; empty when there is none.
fn redirect_params(response: &Response) -> HashMap<String, String> {
    let location = header_of(response, header::LOCATION);
    let query = location.split_once('?').map_or("", |(_, query)| query);

    serde_urlencoded::from_str(query).unwrap()
}

/// Reads an OAuth error body, checking the status, the code and `no-store`.
async fn oauth_error(response: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-store");

    let body = read_json(response).await;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    body
}

mod discovery {
    use super::*;

    #[tokio::test]
    async fn test_both_documents_describe_this_server() {
        let server = TestServer::start().await;
        let base = server.server.base_url();

        let oauth = server
            .get_json("/.well-known/oauth-authorization-server")
            .await;
        let openid = server.get_json("/.well-known/openid-configuration").await;

        assert_eq!(oauth, openid);
        assert_eq!(oauth["issuer"], base);
        assert_eq!(oauth["token_endpoint"], format!("{base}/oauth/token"));
        assert_eq!(
            oauth["authorization_endpoint"],
            format!("{base}/oauth/authorize")
        );
        assert_eq!(oauth["revocation_endpoint"], format!("{base}/oauth/revoke"));
        assert_eq!(
            oauth["device_authorization_endpoint"],
            format!("{base}/oauth/device_authorization")
        );
        assert_eq!(oauth["userinfo_endpoint"], format!("{base}/me"));
        assert_eq!(oauth["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            oauth["token_endpoint_auth_methods_supported"],
            json!(["none"])
        );
        assert_eq!(oauth["response_types_supported"], json!(["code"]));
        assert_eq!(
            oauth["grant_types_supported"],
            json!([
                "authorization_code",
                "password",
                "refresh_token",
                DEVICE_GRANT
            ])
        );
        server.shutdown().await;
    }
}

mod authorization_code {
    use super::*;

    #[tokio::test]
    async fn test_pkce_happy_path() {
        let server = TestServer::start().await;

        let (response, params) = server
            .authorize(&[("login_hint", "alice"), ("scope", "todos profile")])
            .await;
        assert_eq!(response.status(), StatusCode::FOUND);
        assert!(header_of(&response, header::LOCATION).starts_with("roundtrip-demo:/callback?"));
        assert_eq!(params["state"], "xyz");
        let tokens = Tokens::from_response(server.exchange(&params["code"], VERIFIER).await).await;
        let me = server.me(&tokens.access).await;

        assert_eq!(tokens.body["scope"], "todos profile");
        assert_eq!(tokens.body["expires_in"], 3600);
        assert_eq!(me.status(), StatusCode::OK);
        let me = read_json(me).await;
        assert_eq!(me["sub"], "alice");
        assert_eq!(me["scope"], "todos profile");
        assert_eq!(me["grant_id"], 1);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_wrong_verifier_is_invalid_grant() {
        let server = TestServer::start().await;
        let code = server.code().await;

        let wrong = "another-code-verifier-that-is-also-long-enough-1234";
        let response = server.exchange(&code, wrong).await;

        oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_mismatched_redirect_uri_is_invalid_grant() {
        let server = TestServer::start().await;
        let code = server.code().await;

        let response = server
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "roundtrip-demo:/elsewhere"),
                ("client_id", CLIENT_ID),
                ("code_verifier", VERIFIER),
            ])
            .await;

        oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_reused_code_is_refused_and_revokes_its_tokens() {
        let server = TestServer::start().await;
        let code = server.code().await;
        let tokens = Tokens::from_response(server.exchange(&code, VERIFIER).await).await;

        let again = server.exchange(&code, VERIFIER).await;

        oauth_error(again, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert_eq!(
            server.me(&tokens.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let refresh = server.refresh(&tokens.refresh).await;
        oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_unknown_client_or_redirect_is_a_400_not_a_redirect() {
        let server = TestServer::start().await;
        let challenge = challenge(VERIFIER);
        let query = |client: &str, redirect: &str| {
            serde_urlencoded::to_string([
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", redirect),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("login_hint", "alice"),
            ])
            .unwrap()
        };

        let client = server
            .get(&format!("/oauth/authorize?{}", query("evil", REDIRECT_URI)))
            .await;
        let redirect = server
            .get(&format!(
                "/oauth/authorize?{}",
                query(CLIENT_ID, "https://evil.example/cb")
            ))
            .await;

        for response in [client, redirect] {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert!(response.headers().get(header::LOCATION).is_none());
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                "application/problem+json"
            );
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_request_errors_are_redirected_with_the_state() {
        let server = TestServer::start().await;

        for extra in [
            [("code_challenge", "short")],
            [("code_challenge_method", "plain")],
            [("response_type", "token")],
        ] {
            let mut extra = extra.to_vec();
            extra.push(("login_hint", "alice"));
            let (response, params) = server.authorize(&extra).await;

            assert_eq!(response.status(), StatusCode::FOUND, "{extra:?}");
            assert_eq!(params["error"], "invalid_request", "{extra:?}");
            assert_eq!(params["state"], "xyz");
            assert!(params.contains_key("error_description"));
            assert!(!params.contains_key("code"));
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_missing_challenge_is_invalid_request() {
        let server = TestServer::start().await;
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("state", "s1"),
            ("login_hint", "alice"),
        ])
        .unwrap();

        let response = server.get(&format!("/oauth/authorize?{query}")).await;
        let params = redirect_params(&response);

        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(params["error"], "invalid_request");
        assert_eq!(params["state"], "s1");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_login_hint_deny_is_access_denied() {
        let server = TestServer::start().await;

        let (response, params) = server.authorize(&[("login_hint", "deny")]).await;

        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(params["error"], "access_denied");
        assert_eq!(params["state"], "xyz");
        assert!(!params.contains_key("code"));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_sign_in_form_checks_the_password() {
        let server = TestServer::start().await;
        let challenge = challenge(VERIFIER);
        let fields = |password: &'static str| {
            vec![
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("state", "st"),
                ("code_challenge_method", "S256"),
                ("code_challenge", challenge.as_str()),
                ("username", "bob"),
                ("password", password),
            ]
        };

        let (form, _) = server.authorize(&[]).await;
        assert_eq!(form.status(), StatusCode::OK);
        assert!(header_of(&form, header::CONTENT_TYPE).starts_with("text/html"));
        let html = form.text().await.unwrap();
        assert!(html.contains("<form method=\"post\" action=\"/oauth/authorize\">"));
        assert!(html.contains("name=\"code_challenge\""));
        let wrong = server
            .post_form("/oauth/authorize", &fields("wonderland"))
            .await;
        let right = server
            .post_form("/oauth/authorize", &fields("builder"))
            .await;

        assert_eq!(wrong.status(), StatusCode::OK);
        assert!(wrong.text().await.unwrap().contains("wrong"));
        assert_eq!(right.status(), StatusCode::FOUND);
        let location = header_of(&right, header::LOCATION);
        assert!(location.starts_with("http://127.0.0.1:9/cb?code="));
        let code = redirect_params(&right)["code"].clone();
        let tokens = Tokens::from_response(
            server
                .token(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", "http://127.0.0.1:9/cb"),
                    ("client_id", CLIENT_ID),
                    ("code_verifier", VERIFIER),
                ])
                .await,
        )
        .await;
        assert_eq!(
            read_json(server.me(&tokens.access).await).await["sub"],
            "bob"
        );
        server.shutdown().await;
    }
}

mod password {
    use super::*;

    #[tokio::test]
    async fn test_password_grant_issues_tokens() {
        let server = TestServer::start().await;

        let tokens = server.password_tokens("bob", "builder").await;

        assert_eq!(tokens.body["scope"], "todos");
        assert_eq!(tokens.body["expires_in"], 3600);
        assert!(tokens.access.len() >= 43);
        assert_ne!(tokens.access, tokens.refresh);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_wrong_password_is_invalid_grant() {
        let server = TestServer::start().await;

        let response = server
            .token(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "builder"),
                ("client_id", CLIENT_ID),
            ])
            .await;

        oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_unknown_client_is_401_with_a_basic_challenge() {
        let server = TestServer::start().await;

        let response = server
            .token(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wonderland"),
                ("client_id", "someone-else"),
            ])
            .await;

        assert!(header_of(&response, header::WWW_AUTHENTICATE).starts_with("Basic"));
        oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_malformed_requests_are_refused() {
        let server = TestServer::start().await;

        let unsupported = server
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
            ])
            .await;
        let missing = server
            .token(&[("grant_type", "password"), ("client_id", CLIENT_ID)])
            .await;
        let repeated = server
            .token(&[("grant_type", "password"), ("grant_type", "password")])
            .await;
        let bad_scope = server
            .token(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wonderland"),
                ("client_id", CLIENT_ID),
                ("scope", "to\"dos"),
            ])
            .await;
        let json = server
            .post_json("/oauth/token", &json!({"grant_type": "password"}))
            .await;

        oauth_error(
            unsupported,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        )
        .await;
        oauth_error(missing, StatusCode::BAD_REQUEST, "invalid_request").await;
        oauth_error(repeated, StatusCode::BAD_REQUEST, "invalid_request").await;
        oauth_error(bad_scope, StatusCode::BAD_REQUEST, "invalid_scope").await;
        oauth_error(json, StatusCode::BAD_REQUEST, "invalid_request").await;
        server.shutdown().await;
    }
}

mod refresh {
    use super::*;

    #[tokio::test]
    async fn test_refresh_rotates_and_reuse_revokes_the_grant() {
        let server = TestServer::start().await;
        let first = server.password_tokens("alice", "wonderland").await;

        let second = Tokens::from_response(server.refresh(&first.refresh).await).await;
        assert_ne!(second.refresh, first.refresh);
        assert_ne!(second.access, first.access);
        assert_eq!(server.me(&second.access).await.status(), StatusCode::OK);
        let reuse = server.refresh(&first.refresh).await;
        let after = server.refresh(&second.refresh).await;

        oauth_error(reuse, StatusCode::BAD_REQUEST, "invalid_grant").await;
        oauth_error(after, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert_eq!(
            server.me(&second.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let stats = server.oauth_stats().await;
        assert_eq!(stats["refresh_grants"], 3);
        assert_eq!(stats["refresh_reuse_detected"], 1);
        assert_eq!(stats["grants_revoked"], 1);
        assert_eq!(stats["active_grants"], 0);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_refresh_can_narrow_scope_but_not_widen_it() {
        let server = TestServer::start().await;
        let tokens = Tokens::from_response(
            server
                .token(&[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", "wonderland"),
                    ("client_id", CLIENT_ID),
                    ("scope", "todos profile"),
                ])
                .await,
        )
        .await;

        let wider = server
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &tokens.refresh),
                ("client_id", CLIENT_ID),
                ("scope", "todos admin"),
            ])
            .await;
        let narrower = server
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &tokens.refresh),
                ("client_id", CLIENT_ID),
                ("scope", "profile"),
            ])
            .await;

        oauth_error(wider, StatusCode::BAD_REQUEST, "invalid_scope").await;
        assert_eq!(
            Tokens::from_response(narrower).await.body["scope"],
            "profile"
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_unknown_refresh_token_is_invalid_grant() {
        let server = TestServer::start().await;

        let response = server.refresh("not-a-token").await;

        oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_fault_rules_apply_to_the_token_endpoint() {
        let server = TestServer::start().await;
        let tokens = server.password_tokens("alice", "wonderland").await;
        let rule = json!({"path": "/oauth/token", "count": 1, "kind": "status", "status": 503});
        server.control("/_control/faults", rule).await;

        let faulted = server.refresh(&tokens.refresh).await;
        let retried = server.refresh(&tokens.refresh).await;

        assert_eq!(faulted.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retried.status(), StatusCode::OK);
        // The faulted request never reached the handler.
        assert_eq!(server.oauth_stats().await["refresh_grants"], 1);
        server.shutdown().await;
    }
}

mod revocation {
    use super::*;

    async fn revoke(server: &TestServer, token: &str, hint: &str) -> Response {
        server
            .post_form(
                "/oauth/revoke",
                &[
                    ("token", token),
                    ("token_type_hint", hint),
                    ("client_id", CLIENT_ID),
                ],
            )
            .await
    }

    #[tokio::test]
    async fn test_revoking_a_refresh_token_kills_the_grant() {
        let server = TestServer::start().await;
        let tokens = server.password_tokens("alice", "wonderland").await;

        let response = revoke(&server, &tokens.refresh, "refresh_token").await;

        assert_eq!(response.status(), StatusCode::OK);
        let me = server.me(&tokens.access).await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        assert!(header_of(&me, header::WWW_AUTHENTICATE).contains("invalid_token"));
        let refresh = server.refresh(&tokens.refresh).await;
        oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_revoking_an_access_token_leaves_the_grant() {
        let server = TestServer::start().await;
        let tokens = server.password_tokens("alice", "wonderland").await;

        let response = revoke(&server, &tokens.access, "access_token").await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            server.me(&tokens.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let refreshed = Tokens::from_response(server.refresh(&tokens.refresh).await).await;
        assert_eq!(server.me(&refreshed.access).await.status(), StatusCode::OK);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_unknown_tokens_are_revoked_with_200() {
        let server = TestServer::start().await;

        let response = revoke(&server, "never-issued", "refresh_token").await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(server.oauth_stats().await["revocations"], 1);
        server.shutdown().await;
    }
}

mod device {
    use super::*;

    async fn start_device(server: &TestServer) -> Value {
        let response = server
            .post_form(
                "/oauth/device_authorization",
                &[("client_id", CLIENT_ID), ("scope", "todos")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);

        read_json(response).await
    }

    async fn poll(server: &TestServer, device_code: &str) -> Response {
        server
            .token(&[
                ("grant_type", DEVICE_GRANT),
                ("device_code", device_code),
                ("client_id", CLIENT_ID),
            ])
            .await
    }

    #[tokio::test]
    async fn test_pending_then_approved_then_spent() {
        let server = TestServer::start().await;
        server
            .control(
                "/_control/oauth/settings",
                json!({"device_interval_secs": 0}),
            )
            .await;
        let device = start_device(&server).await;
        let device_code = device["device_code"].as_str().unwrap();
        let user_code = device["user_code"].as_str().unwrap();
        let base = server.server.base_url();
        assert_eq!(device["verification_uri"], format!("{base}/device"));
        assert_eq!(
            device["verification_uri_complete"],
            format!("{base}/device?user_code={user_code}")
        );
        assert_eq!(device["interval"], 0);
        assert_eq!(device["expires_in"], 600);
        assert_eq!(user_code.len(), 9);
        assert_eq!(&user_code[4..5], "-");

        let pending = poll(&server, device_code).await;
        oauth_error(pending, StatusCode::BAD_REQUEST, "authorization_pending").await;
        server
            .control(
                "/_control/oauth/device/approve",
                json!({"user_code": user_code, "username": "bob"}),
            )
            .await;
        let tokens = Tokens::from_response(poll(&server, device_code).await).await;
        let spent = poll(&server, device_code).await;

        assert_eq!(
            read_json(server.me(&tokens.access).await).await["sub"],
            "bob"
        );
        oauth_error(spent, StatusCode::BAD_REQUEST, "invalid_grant").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_polling_too_fast_is_slow_down() {
        let server = TestServer::start().await;
        server
            .control(
                "/_control/oauth/settings",
                json!({"device_interval_secs": 1}),
            )
            .await;
        let device = start_device(&server).await;
        let device_code = device["device_code"].as_str().unwrap();
        assert_eq!(device["interval"], 1);

        let first = poll(&server, device_code).await;
        let second = poll(&server, device_code).await;

        oauth_error(first, StatusCode::BAD_REQUEST, "authorization_pending").await;
        oauth_error(second, StatusCode::BAD_REQUEST, "slow_down").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_denied_requests_say_access_denied() {
        let server = TestServer::start().await;
        server
            .control(
                "/_control/oauth/settings",
                json!({"device_interval_secs": 0}),
            )
            .await;
        let device = start_device(&server).await;
        let user_code = device["user_code"].as_str().unwrap().to_lowercase();

        server
            .control(
                "/_control/oauth/device/deny",
                json!({"user_code": user_code}),
            )
            .await;
        let response = poll(&server, device["device_code"].as_str().unwrap()).await;

        oauth_error(response, StatusCode::BAD_REQUEST, "access_denied").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_unknown_user_codes_are_404() {
        let server = TestServer::start().await;

        let response = server
            .post_json(
                "/_control/oauth/device/approve",
                &json!({"user_code": "BCDF-GHJK", "username": "alice"}),
            )
            .await;

        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_the_verification_page_approves() {
        let server = TestServer::start().await;
        server
            .control(
                "/_control/oauth/settings",
                json!({"device_interval_secs": 0}),
            )
            .await;
        let device = start_device(&server).await;
        let user_code = device["user_code"].as_str().unwrap();

        let page = server.get(&format!("/device?user_code={user_code}")).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains(user_code));
        let approved = server
            .post_form(
                "/device",
                &[
                    ("user_code", user_code),
                    ("username", "alice"),
                    ("password", "wonderland"),
                    ("decision", "allow"),
                ],
            )
            .await;
        assert_eq!(approved.status(), StatusCode::OK);
        let response = poll(&server, device["device_code"].as_str().unwrap()).await;

        Tokens::from_response(response).await;
        server.shutdown().await;
    }
}

mod me {
    use super::*;

    #[tokio::test]
    async fn test_missing_token_gets_a_bare_challenge() {
        let server = TestServer::start().await;

        let response = server.get("/me").await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header_of(&response, header::WWW_AUTHENTICATE),
            "Bearer realm=\"roundtrip\""
        );
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "application/problem+json"
        );
        assert_eq!(read_json(response).await["status"], 401);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_invalid_token_gets_invalid_token() {
        let server = TestServer::start().await;

        let response = server.me("made-up").await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = header_of(&response, header::WWW_AUTHENTICATE);
        assert!(challenge.starts_with("Bearer realm=\"roundtrip\", error=\"invalid_token\""));
        assert!(challenge.contains("error_description=\""));
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "application/problem+json"
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_refresh_tokens_are_not_access_tokens() {
        let server = TestServer::start().await;
        let tokens = server.password_tokens("alice", "wonderland").await;

        let response = server.me(&tokens.refresh).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        server.shutdown().await;
    }
}

mod controls {
    use super::*;

    #[tokio::test]
    async fn test_expire_access_tokens_keeps_refresh_tokens() {
        let server = TestServer::start().await;
        let tokens = server.password_tokens("alice", "wonderland").await;

        server
            .control("/_control/oauth/expire-access-tokens", json!({}))
            .await;

        let me = server.me(&tokens.access).await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        assert!(header_of(&me, header::WWW_AUTHENTICATE).contains("expired"));
        let refreshed = Tokens::from_response(server.refresh(&tokens.refresh).await).await;
        assert_eq!(server.me(&refreshed.access).await.status(), StatusCode::OK);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_settings_change_the_access_token_lifetime() {
        let server = TestServer::start().await;
        server
            .control(
                "/_control/oauth/settings",
                json!({"access_token_ttl_secs": 1}),
            )
            .await;

        let tokens = server.password_tokens("alice", "wonderland").await;
        assert_eq!(tokens.body["expires_in"], 1);
        assert_eq!(server.me(&tokens.access).await.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(1100)).await;

        assert_eq!(
            server.me(&tokens.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_unknown_settings_are_refused() {
        let server = TestServer::start().await;

        let response = server
            .post_json("/_control/oauth/settings", &json!({"acess_token_ttl": 1}))
            .await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_stats_and_token_counts() {
        let server = TestServer::start().await;
        let tokens = server.password_tokens("alice", "wonderland").await;
        server.refresh(&tokens.refresh).await;
        server
            .token(&[("grant_type", "password"), ("client_id", CLIENT_ID)])
            .await;
        server
            .post_form(
                "/oauth/revoke",
                &[("token", "unknown"), ("client_id", CLIENT_ID)],
            )
            .await;

        let stats = server.oauth_stats().await;
        let counts = server.get_json("/_control/oauth/tokens").await;

        assert_eq!(
            stats,
            json!({
                "token_requests": 3,
                "refresh_grants": 1,
                "refresh_reuse_detected": 0,
                "revocations": 1,
                "grants_revoked": 0,
                "active_grants": 1,
            })
        );
        assert_eq!(
            counts,
            json!({"access_tokens_issued": 2, "refresh_tokens_issued": 2})
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn test_reset_clears_oauth_state_and_settings() {
        let server = TestServer::start().await;
        server
            .control(
                "/_control/oauth/settings",
                json!({"access_token_ttl_secs": 5}),
            )
            .await;
        let tokens = server.password_tokens("alice", "wonderland").await;

        server.control("/_control/reset", json!({})).await;

        assert_eq!(
            server.me(&tokens.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let counts = server.get_json("/_control/oauth/tokens").await;
        assert_eq!(counts["access_tokens_issued"], 0);
        let stats = server.oauth_stats().await;
        assert_eq!(stats["token_requests"], 0);
        let fresh = server.password_tokens("alice", "wonderland").await;
        assert_eq!(fresh.body["expires_in"], 3600);
        assert_eq!(
            read_json(server.me(&fresh.access).await).await["grant_id"],
            1
        );
        server.shutdown().await;
    }
}

mod logging {
    use super::*;

    /// Everything the server logs, at every level, while this binary runs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn test_no_secret_reaches_the_logs() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        // The test runtime has one thread, so the server's tasks log to this subscriber too.
        let _guard = tracing::subscriber::set_default(subscriber);
        let server = TestServer::start().await;

        let code = server.code().await;
        let first = Tokens::from_response(server.exchange(&code, VERIFIER).await).await;
        let second = Tokens::from_response(server.refresh(&first.refresh).await).await;
        server.refresh(&first.refresh).await;
        server.me(&second.access).await;
        server
            .post_form(
                "/oauth/revoke",
                &[("token", &second.refresh), ("client_id", CLIENT_ID)],
            )
            .await;
        server.password_tokens("alice", "wonderland").await;

        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("tokens issued"), "the capture works: {logs}");
        for secret in [
            code.as_str(),
            &first.access,
            &first.refresh,
            &second.access,
            &second.refresh,
            VERIFIER,
            "wonderland",
        ] {
            assert!(!logs.contains(secret), "a secret was logged");
        }
        server.shutdown().await;
    }
}
