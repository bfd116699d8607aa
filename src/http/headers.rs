//! Headers and invoke metadata, both ways (facts §2): every request header
//! goes to the app under Go's canonical key, and the app's reply metadata
//! comes back as response headers, as daprd does.

use std::collections::HashMap;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::service::auth::TOKEN_HEADER;

/// Added to every invoke's metadata by daprd's HTTP API.
const API_CALL: &str = "Dapr-Api-Call";
/// The caller's app id; an HTTP caller of this gateway is its own app.
const CALLER_APP_ID: &str = "dapr-caller-app-id";

/// The metadata an invoke carries to the app: each header's first value
/// under its canonical key, without Host and Transfer-Encoding, without the
/// API token when the gateway checks one, plus daprd's own keys. Values that
/// are not UTF-8 cannot travel in the map and are left out.
pub fn invoke_metadata(
    headers: &HeaderMap,
    token_checked: bool,
    app_id: &str,
) -> HashMap<String, String> {
    let mut metadata = HashMap::with_capacity(headers.keys_len() + 2);
    for name in headers.keys() {
        if name == header::HOST
            || name == header::TRANSFER_ENCODING
            || (token_checked && name == TOKEN_HEADER)
        {
            continue;
        }
        let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        metadata
            .entry(canonical(name.as_str()))
            .or_insert_with(|| value.to_owned());
    }
    metadata.insert(API_CALL.to_owned(), "true".to_owned());
    metadata.insert(CALLER_APP_ID.to_owned(), app_id.to_owned());
    metadata
}

/// Go's `CanonicalMIMEHeaderKey`: the first letter and each letter after a
/// `-` upper case, the rest lower case; a key with a character outside
/// HTTP's token set is left as it is.
pub fn canonical(key: &str) -> String {
    if !key.bytes().all(is_token_byte) {
        return key.to_owned();
    }
    let mut upper = true;
    key.chars()
        .map(|c| {
            let c = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            c
        })
        .collect()
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The response's Content-Type: the reply metadata's `content-type` (that
/// exact key), else JSON.
pub fn content_type(metadata: &HashMap<String, String>) -> HeaderValue {
    metadata
        .get("content-type")
        .and_then(|v| HeaderValue::from_str(v).ok())
        .unwrap_or(HeaderValue::from_static("application/json"))
}

/// The reply metadata as response headers: all but content type and length,
/// hop-by-hop headers, binary (`-bin`) and trace keys; `grpc-*` keys get a
/// `dapr-` prefix. A key or value that is not a valid header is left out.
pub fn reply_headers(metadata: &HashMap<String, String>, headers: &mut HeaderMap) {
    for (key, value) in metadata {
        let lower = key.to_ascii_lowercase();
        if skipped(&lower) {
            continue;
        }
        let name = if lower.starts_with("grpc-") {
            format!("dapr-{lower}")
        } else {
            lower
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
}

fn skipped(key: &str) -> bool {
    const SKIPPED: &[&str] = &[
        "content-type",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "traceparent",
        "tracestate",
    ];
    SKIPPED.contains(&key) || key.ends_with("-bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_take_go_canonical_form() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("dapr-reentrancy-id"), "Dapr-Reentrancy-Id");
        assert_eq!(canonical("x-ABC"), "X-Abc");
        assert_eq!(canonical("with space"), "with space");
    }

    #[test]
    fn invoke_metadata_drops_host_and_the_checked_token() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("h"));
        headers.insert(TOKEN_HEADER, HeaderValue::from_static("t"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let checked = invoke_metadata(&headers, true, "me");
        assert_eq!(checked.get("X-A").map(String::as_str), Some("1"));
        assert!(!checked.contains_key("Host") && !checked.contains_key("Dapr-Api-Token"));
        assert_eq!(
            checked.get("Dapr-Api-Call").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            checked.get("dapr-caller-app-id").map(String::as_str),
            Some("me")
        );
        let open = invoke_metadata(&headers, false, "me");
        assert_eq!(open.get("Dapr-Api-Token").map(String::as_str), Some("t"));
    }

    #[test]
    fn reply_metadata_becomes_headers_but_for_the_reserved_ones() {
        let metadata: HashMap<String, String> = [
            ("content-type", "text/plain"),
            ("x-ok", "1"),
            ("grpc-status", "0"),
            ("trace-bin", "zz"),
            ("traceparent", "00-x"),
            ("connection", "close"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut headers = HeaderMap::new();
        reply_headers(&metadata, &mut headers);
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert_eq!(headers["x-ok"], "1");
        assert_eq!(headers["dapr-grpc-status"], "0");
        assert_eq!(content_type(&metadata), "text/plain");
    }
}
