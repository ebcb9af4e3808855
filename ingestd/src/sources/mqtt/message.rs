//! One MQTT message to a raw record, or to the reason it is dropped. Never truncates: a topic or
//! payload that does not fit is dropped whole and counted.
//!
//! A message is checked when it is taken ([`stage`]) and kept as slices of rumqttc's read buffer
//! until the batch is handed over; only then is it written, once, straight into its ring slot
//! ([`Staged::write`]). Building each 512-byte record in a batch of its own and copying that
//! into the ring cost a memset and a 512-byte copy per message (docs/benchmarks.md).

use bytes::Bytes;
use records::names::drop_reason;
use records::{ContentType, RawRecord, RAW_TOPIC_MAX};
use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::mqttbytes::QoS;

/// A message that fits a raw record, waiting for its slot.
#[derive(Debug)]
pub struct Staged {
    topic: Bytes,
    payload: Bytes,
    content_type: ContentType,
    received_ms: u64,
    /// Its ack (QoS 1), sent once the record is in the ring.
    pub ack: Option<Ack>,
    /// Its identity for recognising a redelivery (QoS 1; set by the caller).
    pub digest: Option<super::redelivery::Digest>,
    /// Its arrival number among QoS 1 messages (set by the caller; orders the acks).
    pub seq: u64,
}

/// What an ack needs of a message: its packet id and QoS. Keeping the whole `Publish` until the
/// ack goes out would keep its topic and payload (slices of rumqttc's read buffers) alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The broker's packet id.
    pub pkid: u16,
    qos: QoS,
}

impl Ack {
    /// The ack `publish` needs, if any (QoS 1 and 2).
    pub fn of(publish: &Publish) -> Option<Ack> {
        (publish.qos != QoS::AtMostOnce).then_some(Ack {
            pkid: publish.pkid,
            qos: publish.qos,
        })
    }

    /// A QoS 1 ack with packet id `pkid`, for tests.
    #[cfg(test)]
    pub fn for_test(pkid: u16) -> Ack {
        Ack {
            pkid,
            qos: QoS::AtLeastOnce,
        }
    }

    /// The message shape `AsyncClient::try_ack` takes (no topic, no payload: nothing allocated).
    pub fn publish(self) -> Publish {
        let mut p = Publish::new("", self.qos, Vec::new(), None);
        p.pkid = self.pkid;
        p
    }
}

/// Checks that `publish` fits a raw record, keeping its topic and payload (no copy), or returns
/// the drop reason.
pub fn stage(publish: Publish, received_ms: u64, max_payload: usize) -> Result<Staged, &'static str> {
    if publish.topic.len() > RAW_TOPIC_MAX {
        return Err(drop_reason::TOPIC_TOO_LONG);
    }
    if publish.payload.len() > max_payload.min(records::RAW_PAYLOAD_MAX) {
        return Err(drop_reason::PAYLOAD_TOO_LARGE);
    }
    let content_type = content_type(&publish);
    Ok(Staged {
        ack: Ack::of(&publish),
        digest: None,
        seq: 0,
        topic: publish.topic,
        payload: publish.payload,
        content_type,
        received_ms,
    })
}

impl Staged {
    /// Writes the record into `slot` (a ring slot): only its header, topic and payload bytes
    /// (the rest of the slot is beyond the lengths and never read).
    pub fn write(&self, slot: &mut RawRecord) {
        slot.fill(&self.topic, &self.payload, self.content_type, self.received_ms)
            .expect("checked by stage()");
    }

    /// Whether `record` holds this message (same topic and payload).
    pub fn same_as(&self, record: &RawRecord) -> bool {
        &self.topic[..] == record.topic() && &self.payload[..] == record.payload()
    }
}

/// The MQTT 5 content type, as far as the pipeline understands it.
pub fn content_type(publish: &Publish) -> ContentType {
    let declared = publish.properties.as_ref().and_then(|p| p.content_type.as_deref());
    declared.map_or(ContentType::Unknown, ContentType::from_mime)
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
    fn a_message_that_fits_is_written_whole_over_whatever_the_slot_held() {
        let mut slot = RawRecord::new(&[b'x'; 100], &[b'y'; 300], ContentType::Json, 1).unwrap();
        let staged = stage(
            publish("site/a/sensor/t", b"\xa1\x61v\x01", Some("application/cbor")),
            5,
            384,
        )
        .unwrap();
        staged.write(&mut slot);
        assert_eq!(slot.topic(), b"site/a/sensor/t");
        assert_eq!(slot.payload(), b"\xa1\x61v\x01");
        assert_eq!((slot.content_type(), slot.received_ms), (ContentType::Cbor, 5));
        assert!(staged.same_as(&slot));
        assert!(!staged.same_as(&RawRecord::zeroed()));
    }

    #[test]
    fn oversize_parts_are_dropped_with_their_reason_never_truncated() {
        let long_topic = "t".repeat(records::RAW_TOPIC_MAX + 1);
        assert_eq!(
            stage(publish(&long_topic, b"x", None), 0, 384).unwrap_err(),
            drop_reason::TOPIC_TOO_LONG
        );
        assert_eq!(
            stage(publish("t", &[0; 101], None), 0, 100).unwrap_err(),
            drop_reason::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            stage(publish("t", &[0; 385], None), 0, 384).unwrap_err(),
            drop_reason::PAYLOAD_TOO_LARGE
        );
        // max_payload above what a record holds still means what a record holds.
        assert_eq!(
            stage(publish("t", &[0; 385], None), 0, 10_000).unwrap_err(),
            drop_reason::PAYLOAD_TOO_LARGE
        );
        let exact = "t".repeat(records::RAW_TOPIC_MAX);
        assert!(stage(publish(&exact, &[0; 384], None), 0, 384).is_ok());
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
