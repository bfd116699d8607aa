//! JSON the way daprd's Go writes it (facts §0, §3): what an HTTP client
//! reads back must be what daprd would have given it.
//!
//! Go's `encoding/json` decodes a state value into `any` and marshals it
//! again, so what is stored is not the text that was sent: object keys
//! sorted, no whitespace, every number a float64 (`1.0` is `1`, integers past
//! 2^53 lose precision), and `< > &` (and U+2028, U+2029) escaped for HTML.

use serde_json::Value;

/// `value` as Go's `json.Marshal` writes it after decoding into `any`.
pub fn marshal(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value);
    out
}

/// As [`marshal`], with the newline Go's `json.Encoder` ends each value with
/// (the GET reminder and metadata bodies).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = marshal(value);
    out.push(b'\n');
    out
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_number(out, n.as_f64().unwrap_or(0.0)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Go sorts map keys by their bytes, whatever order they came in.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// Go's float64 encoding: the shortest digits that read back the same, in
/// plain notation between 1e-6 and 1e21 and in exponent notation outside
/// (`1e+21`, `1e-7`).
fn write_number(out: &mut Vec<u8>, f: f64) {
    let abs = f.abs();
    let text = if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e21` and `1e-7`; Go writes `1e+21` and `1e-7`.
        let e = format!("{f:e}");
        match e.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => e,
        }
    } else {
        format!("{f}")
    };
    out.extend_from_slice(text.as_bytes());
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c if (c as u32) < 0x20 => {
                let b = c as u8;
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(text: &str) -> String {
        String::from_utf8(marshal(&serde_json::from_str(text).unwrap())).unwrap()
    }

    #[test]
    fn state_values_are_re_serialised_as_go_does() {
        assert_eq!(go("\"value1\""), "\"value1\"");
        assert_eq!(
            go("{ \"b\" : 1.0, \"a\": [true, null] }"),
            "{\"a\":[true,null],\"b\":1}"
        );
        assert_eq!(go("12345678901234567890"), "12345678901234567000");
        assert_eq!(go("\"<a & b>\""), "\"\\u003ca \\u0026 b\\u003e\"");
        assert_eq!(go("\"\\u0001\\b\\f\\u2028\""), "\"\\u0001\\b\\f\\u2028\"");
    }

    #[test]
    fn numbers_take_go_notation_at_the_extremes() {
        assert_eq!(go("1e21"), "1e+21");
        assert_eq!(go("1e20"), "100000000000000000000");
        assert_eq!(go("0.0000001"), "1e-7");
        assert_eq!(go("0.000001"), "0.000001");
        assert_eq!(go("-2.5"), "-2.5");
        assert_eq!(go("0"), "0");
    }
}
