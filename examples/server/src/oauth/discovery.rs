//! Authorization server metadata (RFC 8414), also served where OpenID
//! Connect clients look for it.

use axum::Json;
use axum::http::{HeaderMap, Uri};
use serde_json::{Value, json};

use super::base_url;
use super::token::DEVICE_CODE_GRANT;

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
///
/// Every URL is built from the `Host` the client used, so the document is
/// right for whatever port the server was bound to.
pub(crate) async fn metadata(uri: Uri, headers: HeaderMap) -> Json<Value> {
    let base = base_url(&headers, &uri);

    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "device_authorization_endpoint": format!("{base}/oauth/device_authorization"),
        "userinfo_endpoint": format!("{base}/me"),
        "grant_types_supported": ["authorization_code", "password", "refresh_token", DEVICE_CODE_GRANT],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
}
