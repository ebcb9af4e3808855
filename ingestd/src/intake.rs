//! One MQTT message to a raw record, or to the reason it is dropped. Never truncates: a topic or
//! payload that does not fit is dropped whole and counted.

use records::names::drop_reason;
use records::{ContentType, RawRecord, TooLarge};
use rumqttc::v5::mqttbytes::v5::Publish;

/// Builds the raw record for `publish` in `slot`, or returns the drop reason.
pub fn fill(slot: &mut RawRecord, publish: &Publish, received_ms: u64, max_payload: usize) -> Result<(), &'static str> {
    if publish.payload.len() > max_payload {
        return Err(drop_reason::PAYLOAD_TOO_LARGE);
    }
    slot.fill(&publish.topic, &publish.payload, content_type(publish), received_ms)
        .map_err(|e| match e {
            TooLarge::Topic => drop_reason::TOPIC_TOO_LONG,
            TooLarge::Payload => drop_reason::PAYLOAD_TOO_LARGE,
        })
}

/// The MQTT 5 content type, as far as the pipeline understands it.
pub fn content_type(publish: &Publish) -> ContentType {
    let declared = publish.properties.as_ref().and_then(|p| p.content_type.as_deref());
    match declared.map(|c| c.split(';').next().unwrap_or("").trim()) {
        Some(c) if c.eq_ignore_ascii_case("application/cbor") => ContentType::Cbor,
        Some(c) if c.eq_ignore_ascii_case("application/json") => ContentType::Json,
        _ => ContentType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS;

    fn publish(topic: &str, payload: &[u8], content_type: Option<&str>) -> Publish {
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload.to_vec(), None);
        p.properties = content_type.map(|c| PublishProperties {
            content_type: Some(c.to_owned()),
            ..Default::default()
        });
        p
    }

    #[test]
    fn a_message_that_fits_is_copied_whole() {
        let mut slot = RawRecord::zeroed();
        fill(
            &mut slot,
            &publish("site/a/sensor/t", b"\xa1\x61v\x01", Some("application/cbor")),
            5,
            384,
        )
        .unwrap();
        assert_eq!(slot.topic(), b"site/a/sensor/t");
        assert_eq!(slot.payload(), b"\xa1\x61v\x01");
        assert_eq!((slot.content_type(), slot.received_ms), (ContentType::Cbor, 5));
    }

    #[test]
    fn oversize_parts_are_dropped_with_their_reason_never_truncated() {
        let mut slot = RawRecord::zeroed();
        let long_topic = "t".repeat(records::RAW_TOPIC_MAX + 1);
        assert_eq!(
            fill(&mut slot, &publish(&long_topic, b"x", None), 0, 384),
            Err(drop_reason::TOPIC_TOO_LONG)
        );
        assert_eq!(
            fill(&mut slot, &publish("t", &[0; 101], None), 0, 100),
            Err(drop_reason::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(
            fill(&mut slot, &publish("t", &[0; 385], None), 0, 384),
            Err(drop_reason::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(slot.topic(), b"", "the slot is untouched");
    }

    #[test]
    fn content_types_are_recognised_loosely() {
        assert_eq!(
            content_type(&publish("t", b"", Some("application/json; charset=utf-8"))),
            ContentType::Json
        );
        assert_eq!(
            content_type(&publish("t", b"", Some("Application/CBOR"))),
            ContentType::Cbor
        );
        assert_eq!(
            content_type(&publish("t", b"", Some("text/plain"))),
            ContentType::Unknown
        );
        assert_eq!(content_type(&publish("t", b"", None)), ContentType::Unknown);
    }
}
