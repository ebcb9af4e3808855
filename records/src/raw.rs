//! `RawRecord`: one MQTT message as ingestd received it, on its way to decoded.

use bytemuck::{Pod, Zeroable};

/// Longest topic a raw record holds; a longer one is dropped as `topic_too_long`.
pub const RAW_TOPIC_MAX: usize = 112;
/// Largest payload a raw record holds; a larger one is dropped as `payload_too_large`.
pub const RAW_PAYLOAD_MAX: usize = 384;

/// How the payload is encoded, as far as ingestd could tell from the declared content type (the
/// MQTT 5 content type property, or an HTTP `Content-Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ContentType {
    /// Not declared: decoded decides (per-topic setting, then the first byte).
    Unknown = 0,
    /// `application/cbor`.
    Cbor = 1,
    /// `application/json`.
    Json = 2,
    /// `application/x-protobuf` (also `application/protobuf`, `application/vnd.google.protobuf`).
    Protobuf = 3,
}

impl ContentType {
    /// The content type a MIME type declares: case-insensitive, parameters (`; charset=...`)
    /// ignored; anything else is [`ContentType::Unknown`].
    ///
    /// ```
    /// use records::ContentType;
    /// assert_eq!(ContentType::from_mime("Application/CBOR"), ContentType::Cbor);
    /// assert_eq!(ContentType::from_mime("application/json; charset=utf-8"), ContentType::Json);
    /// assert_eq!(ContentType::from_mime("application/x-protobuf"), ContentType::Protobuf);
    /// assert_eq!(ContentType::from_mime("text/plain"), ContentType::Unknown);
    /// ```
    pub fn from_mime(mime: &str) -> ContentType {
        let essence = mime.split(';').next().unwrap_or("").trim();
        let is = |name: &str| essence.eq_ignore_ascii_case(name);
        if is("application/cbor") {
            ContentType::Cbor
        } else if is("application/json") {
            ContentType::Json
        } else if is("application/x-protobuf") || is("application/protobuf") || is("application/vnd.google.protobuf") {
            ContentType::Protobuf
        } else {
            ContentType::Unknown
        }
    }
}

/// One MQTT message: its topic and payload, inline, and when the network read that delivered it
/// happened. 512 bytes.
///
/// ```
/// use records::{ContentType, RawRecord};
/// let raw = RawRecord::new(b"site/s1/sensor/t", &[0xa1, 0x61, 0x64], ContentType::Cbor, 1_700_000_000_000).unwrap();
/// assert_eq!(raw.topic(), b"site/s1/sensor/t");
/// assert_eq!(raw.payload(), &[0xa1, 0x61, 0x64]);
/// assert_eq!(raw.content_type(), ContentType::Cbor);
/// assert!(RawRecord::new(&[b'x'; 113], b"", ContentType::Unknown, 0).is_err());
/// ```
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct RawRecord {
    /// Wall-clock milliseconds of the network read that delivered the message (one per read
    /// batch, not per message).
    pub received_ms: u64,
    topic_len: u16,
    payload_len: u16,
    content_type: u8,
    _pad: [u8; 3],
    topic: [u8; RAW_TOPIC_MAX],
    payload: [u8; RAW_PAYLOAD_MAX],
}

const _: () = assert!(std::mem::size_of::<RawRecord>() == 512);

impl shm_ring::Record for RawRecord {
    const TYPE_NAME: &'static str = "RawRecord/1";
}

/// Why a message does not fit a raw record; each is a drop reason of ingestd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TooLarge {
    /// The topic is longer than [`RAW_TOPIC_MAX`].
    Topic,
    /// The payload is larger than [`RAW_PAYLOAD_MAX`].
    Payload,
}

impl RawRecord {
    /// Builds a record, or says which part does not fit.
    pub fn new(topic: &[u8], payload: &[u8], content_type: ContentType, received_ms: u64) -> Result<Self, TooLarge> {
        let mut r = RawRecord::zeroed();
        r.fill(topic, payload, content_type, received_ms)?;
        Ok(r)
    }

    /// Overwrites this record in place (for example a ring slot), or says which part does not fit
    /// and leaves it unchanged.
    pub fn fill(
        &mut self,
        topic: &[u8],
        payload: &[u8],
        content_type: ContentType,
        received_ms: u64,
    ) -> Result<(), TooLarge> {
        if topic.len() > RAW_TOPIC_MAX {
            return Err(TooLarge::Topic);
        }
        if payload.len() > RAW_PAYLOAD_MAX {
            return Err(TooLarge::Payload);
        }
        self.received_ms = received_ms;
        self.topic_len = topic.len() as u16;
        self.payload_len = payload.len() as u16;
        self.content_type = content_type as u8;
        self.topic[..topic.len()].copy_from_slice(topic);
        self.payload[..payload.len()].copy_from_slice(payload);
        Ok(())
    }

    /// The topic bytes.
    pub fn topic(&self) -> &[u8] {
        &self.topic[..(self.topic_len as usize).min(RAW_TOPIC_MAX)]
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload[..(self.payload_len as usize).min(RAW_PAYLOAD_MAX)]
    }

    /// The declared content type (unknown values read as [`ContentType::Unknown`]).
    pub fn content_type(&self) -> ContentType {
        match self.content_type {
            1 => ContentType::Cbor,
            2 => ContentType::Json,
            3 => ContentType::Protobuf,
            _ => ContentType::Unknown,
        }
    }
}
