//! The `data` of a timer or reminder as it travels back to the app: the
//! registered bytes (gRPC) or JSON text (HTTP) wrapped the way daprd wraps
//! them (facts §3, §4).
//!
//! daprd JSON-marshals the bytes (Go writes `[]byte` as a JSON string of
//! padded standard base64) and packs that into a `BytesValue` Any. The Python
//! SDK depends on exactly this: it unpacks the BytesValue, JSON-decodes a
//! string and base64-decodes it; a reminder whose Any holds the raw bytes
//! never reaches the actor. The same Any goes in the fire messages and in
//! GetActorReminder's answer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use prost_types::Any;

pub const BYTES_VALUE_TYPE_URL: &str = "type.googleapis.com/google.protobuf.BytesValue";

/// The Any for registered data: [`encode`] for bytes (gRPC), [`encode_json`]
/// for JSON text (daprd's HTTP API).
pub fn wrap(data: &[u8], is_json: bool) -> Option<Any> {
    match is_json {
        true => encode_json(data),
        false => encode(data),
    }
}

/// The Any daprd sends for data registered over HTTP: the JSON text itself
/// in the `BytesValue` (facts §4); None for none.
pub fn encode_json(text: &[u8]) -> Option<Any> {
    if text.is_empty() {
        return None;
    }
    Some(Any {
        type_url: BYTES_VALUE_TYPE_URL.to_owned(),
        value: text.to_vec().encode_to_vec(),
    })
}

/// The Any daprd sends for registered `data`; None for none (daprd leaves
/// the field unset).
pub fn encode(bytes: &[u8]) -> Option<Any> {
    if bytes.is_empty() {
        return None;
    }
    // Base64's alphabet needs no JSON escaping, so quoting it makes the JSON string.
    let json_string = format!("\"{}\"", STANDARD.encode(bytes)).into_bytes();
    Some(Any {
        type_url: BYTES_VALUE_TYPE_URL.to_owned(),
        // prost's Message for Vec<u8> is google.protobuf.BytesValue.
        value: json_string.encode_to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_value(any: &Any) -> Vec<u8> {
        assert_eq!(any.type_url, BYTES_VALUE_TYPE_URL);
        Vec::<u8>::decode(any.value.as_slice()).unwrap()
    }

    #[test]
    fn json_data_goes_in_the_bytes_value_as_it_is() {
        assert_eq!(
            bytes_value(&encode_json(b"{\"n\":7}").unwrap()),
            b"{\"n\":7}"
        );
        assert_eq!(encode_json(b""), None);
        // A base64 string over HTTP is what its bytes are over gRPC.
        assert_eq!(encode_json(b"\"cnN0YXRl\""), encode(b"rstate"));
    }

    #[test]
    fn empty_data_is_no_any() {
        assert_eq!(encode(b""), None);
    }

    #[test]
    fn reminder_state_from_the_sdk_is_a_quoted_base64_string() {
        assert_eq!(bytes_value(&encode(b"rstate").unwrap()), b"\"cnN0YXRl\"");
    }

    #[test]
    fn timer_json_data_is_a_quoted_padded_base64_string() {
        assert_eq!(
            bytes_value(&encode(b"{\"n\":7}").unwrap()),
            b"\"eyJuIjo3fQ==\""
        );
    }

    #[test]
    fn the_any_value_is_a_bytes_value_message_on_the_wire() {
        let any = encode(b"rstate").unwrap();
        // Field 1, length-delimited, 10 bytes: "cnN0YXRl" with its quotes.
        assert_eq!(any.value, b"\x0a\x0a\"cnN0YXRl\"");
    }
}
