//! `[decoded]`: the decoder.

use serde::{Deserialize, Serialize};

/// How a payload is encoded.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// By the first byte: `{` or JSON whitespace is JSON, anything else CBOR (protobuf is never
    /// guessed: it needs a content type or `proto_topics`).
    Auto,
    /// Always CBOR.
    Cbor,
    /// Always JSON.
    Json,
    /// Always protobuf (`telemetry.v1.Reading`).
    Protobuf,
}

/// `[decoded]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Decoded {
    /// Format of payloads that declare no content type and match no list below.
    pub format: PayloadFormat,
    /// Topic filters (MQTT syntax, `+` and `#`) whose payloads are JSON.
    pub json_topics: Vec<String>,
    /// Topic filters whose payloads are CBOR.
    pub cbor_topics: Vec<String>,
    /// Topic filters whose payloads are protobuf `telemetry.v1.Reading`s.
    pub proto_topics: Vec<String>,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            format: PayloadFormat::Auto,
            json_topics: Vec::new(),
            cbor_topics: Vec::new(),
            proto_topics: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    use super::*;

    #[test]
    fn protobuf_is_a_format_and_proto_topics_a_list() {
        let c = Config::from_toml("[decoded]\nformat = \"protobuf\"\nproto_topics = [\"site/+/pb/#\"]\n").unwrap();
        assert_eq!(c.decoded.format, PayloadFormat::Protobuf);
        assert_eq!(c.decoded.proto_topics, ["site/+/pb/#"]);
        assert!(Config::from_toml("[decoded]\nformat = \"proto\"\n").is_err());
    }
}
