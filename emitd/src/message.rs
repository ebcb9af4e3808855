//! An aggregate turned into a NATS message: subject, payload and, in JetStream mode, the
//! `Nats-Msg-Id`.
//!
//! The subjects and payloads of a batch are written one after another into one shared buffer
//! and split off it as reference-counted slices, so building a message allocates nothing of its
//! own (the buffer is replaced once it is used up). The client owns each slice until it has
//! written the message; a slice keeps its part of the buffer alive until then.

use async_nats::Subject;
use bytes::{Bytes, BytesMut};
use records::{Aggregate, FixedText};
use telemetry_config::Config;

use crate::msg_id;
use crate::payload::PayloadEncoder;
use crate::subject::{EmptyId, SubjectWriter};

/// Bytes of shared buffer allocated at a time.
const ARENA_BYTES: usize = 64 * 1024;

/// One message, ready for the client. Cloning it is cheap (reference counts), which is how a
/// JetStream publish is retried.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// `<prefix>.<device>.<sensor>`, escaped.
    pub subject: Subject,
    /// The encoded aggregate.
    pub payload: Bytes,
    /// The deduplication id (JetStream mode only).
    pub msg_id: Option<String>,
}

/// Builds the messages of one configuration.
#[derive(Debug)]
pub struct MessageBuilder {
    subjects: SubjectWriter,
    payloads: PayloadEncoder,
    instance: String,
    with_msg_id: bool,
    arena: BytesMut,
}

impl MessageBuilder {
    /// Messages as `[emitd]` and `[pipeline] instance` say; with a `Nats-Msg-Id` in JetStream mode.
    pub fn new(config: &Config) -> Self {
        MessageBuilder {
            subjects: SubjectWriter::new(&config.emitd.subject_prefix),
            payloads: PayloadEncoder::of(config),
            instance: config.pipeline.instance.clone(),
            with_msg_id: config.emitd.jetstream,
            arena: BytesMut::new(),
        }
    }

    /// The message of `agg`, or [`EmptyId`] if it has no safe subject.
    pub fn build(&mut self, agg: &Aggregate) -> Result<Outgoing, EmptyId> {
        if self.arena.capacity() < 1024 {
            self.arena = BytesMut::with_capacity(ARENA_BYTES);
        }
        self.subjects
            .write(agg.device().bytes(), agg.sensor().bytes(), &mut self.arena)?;
        let subject_bytes = self.arena.split().freeze();
        let msg_id = self.with_msg_id.then(|| {
            let key = &subject_bytes[self.subjects.prefix().len() + 1..];
            let mut id = String::with_capacity(self.instance.len() + key.len() + 22);
            msg_id::write(
                &mut id,
                &self.instance,
                &String::from_utf8_lossy(key),
                agg.window_end_ms,
            );
            id
        });
        // The subject is printable ASCII (see `subject`), so this never fails.
        let subject = Subject::from_utf8(subject_bytes).map_err(|_| EmptyId)?;
        self.payloads.encode(agg, &mut self.arena);
        let payload = self.arena.split().freeze();
        Ok(Outgoing {
            subject,
            payload,
            msg_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::from_toml(toml).unwrap()
    }

    #[test]
    fn builds_subject_payload_and_msg_id() {
        let mut b = MessageBuilder::new(&config(
            "[pipeline]\ninstance = \"edge-1\"\n[emitd]\njetstream = true\n",
        ));
        let mut agg = Aggregate::new(b"a.b", b"t emp", b"C").unwrap();
        agg.window_end_ms = 42;
        let m = b.build(&agg).unwrap();
        assert_eq!(m.subject.as_str(), "telemetry.agg.a%2Eb.t%20emp");
        assert_eq!(m.msg_id.as_deref(), Some("edge-1.a%2Eb.t%20emp.42"));
        assert_eq!(m.msg_id, msg_id::of("edge-1", &agg));
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["device"], "a.b");
        assert_eq!(v["instance"], "edge-1");
    }

    #[test]
    fn core_mode_has_no_msg_id_and_many_messages_share_buffers() {
        let mut b = MessageBuilder::new(&config(""));
        let msgs: Vec<Outgoing> = (0..2000)
            .map(|i| {
                b.build(&Aggregate::new(format!("dev{i}").as_bytes(), b"s", b"").unwrap())
                    .unwrap()
            })
            .collect();
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.msg_id, None);
            assert_eq!(m.subject.as_str(), format!("telemetry.agg.dev{i}.s"));
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(v["device"], format!("dev{i}"));
        }
    }

    #[test]
    fn empty_ids_are_refused() {
        let mut b = MessageBuilder::new(&config(""));
        assert_eq!(b.build(&Aggregate::new(b"", b"s", b"").unwrap()).unwrap_err(), EmptyId);
    }
}
