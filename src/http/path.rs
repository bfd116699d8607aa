//! The names in an actor route's path, read as daprd reads them (facts §0):
//! `//` collapsed and one trailing `/` dropped before routing, each segment
//! query-unescaped (`+` is a space, `%2F` a slash), and a method name
//! cleaned as Go's `path.Clean` does.

use std::borrow::Cow;

/// A path segment that is not a valid escape sequence, or not UTF-8 once
/// unescaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL escape in the path")]
pub struct BadEscape;

/// The path routing sees: runs of `/` collapsed, one trailing `/` dropped.
pub fn normalize(path: &str) -> Cow<'_, str> {
    let doubled = path.contains("//");
    let trailing = path.len() > 1 && path.ends_with('/');
    if !doubled && !trailing {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    Cow::Owned(out)
}

/// The `index`th segment of `path` (after its leading `/`), unescaped.
pub fn segment(path: &str, index: usize) -> Result<String, BadEscape> {
    let raw = path
        .trim_start_matches('/')
        .split('/')
        .nth(index)
        .unwrap_or("");
    unescape(raw)
}

/// Go's `url.QueryUnescape`.
pub fn unescape(raw: &str) -> Result<String, BadEscape> {
    if !raw.contains(['%', '+']) {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(BadEscape)?;
                let high = hex_value(hex[0]).ok_or(BadEscape)?;
                let low = hex_value(hex[1]).ok_or(BadEscape)?;
                out.push(high << 4 | low);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| BadEscape)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Go's `path.Clean`: `.` and `..` resolved lexically, so that
/// `admin/../legit` names the method `legit` (as daprd does).
pub fn clean(name: &str) -> String {
    let rooted = name.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_collapsed_and_lose_one_trailing_slash() {
        assert_eq!(normalize("/v1.0//healthz/"), "/v1.0/healthz");
        assert_eq!(normalize("/v1.0/metadata"), "/v1.0/metadata");
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn segments_are_query_unescaped() {
        assert_eq!(unescape("a+b%2Fc%41").unwrap(), "a b/cA");
        for bad in ["%", "%4", "%zz", "%ff"] {
            assert_eq!(unescape(bad), Err(BadEscape), "{bad}");
        }
        assert_eq!(segment("/v1.0/actors/T/a%20b", 3).unwrap(), "a b");
    }

    #[test]
    fn method_names_are_cleaned_as_go_cleans_paths() {
        assert_eq!(clean("admin/../legit"), "legit");
        assert_eq!(clean("a//b/./c"), "a/b/c");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("plain"), "plain");
    }
}
