//! Reading a topic back with a real consumer (librdkafka): every partition assigned from the
//! beginning (no consumer group: Tansu's group joins take tens of seconds).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::PATIENCE;

/// One record as the consumer saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).unwrap_or_else(|e| panic!("value of {} is not JSON ({e})", self.key))
    }

    /// `(device, sensor, window_end_ms)` from the value.
    pub fn agg_key(&self) -> (String, String, u64) {
        let v = self.json();
        (
            v["device"].as_str().unwrap().to_owned(),
            v["sensor"].as_str().unwrap().to_owned(),
            v["window_end_ms"].as_u64().unwrap(),
        )
    }
}

/// Reads `topic` (of `partitions` partitions) from the start until at least `n` records came,
/// then for `settle` more to see any beyond them. Ordered by partition, then offset.
pub fn read_topic(bootstrap: &str, topic: &str, partitions: i32, n: usize, settle: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "emitd-tests")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if settle_until.is_some_and(|t| now >= t) {
            break;
        }
        assert!(
            now < deadline,
            "read {} of {n} records from {topic} before giving up",
            out.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap(),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
        if out.len() >= n && settle_until.is_none() {
            settle_until = Some(Instant::now() + settle);
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}
