//! Topic aliases a broker was never allowed to send.
//!
//! MQTT 5 lets a broker replace a topic by a number the client agreed to remember (a Topic
//! Alias): the client announces how many it remembers in its CONNECT (Topic Alias Maximum,
//! [`TOPIC_ALIAS_MAX`]), and a PUBLISH with an alias of 0 or above that maximum is a protocol
//! error (MQTT 5.0 §3.3.2.3.4: the receiver closes the connection).
//!
//! ingestd announces 0: it wants full topics. rumqttc 0.25.1 sends the maximum we set, but does
//! not enforce it on what arrives: it remembers every alias a broker sends (the topic as a slice
//! of the packet's buffer, which keeps the whole frame, up to [`super::session::MAX_PACKET`], in
//! memory), and never forgets them, not even across reconnects. A hostile broker could so pin
//! 65,535 frames of 1 MiB each. ingestd therefore checks each PUBLISH rumqttc hands over: one
//! that carries an alias is refused (never taken into the ring, never acked), counted
//! (`mqtt.protocol_errors`), and the connection is dropped with rumqttc's whole session state,
//! its alias map included ([`drop_connection`]); ingestd then reconnects with backoff. At most
//! one read's worth of packets (rumqttc reads at most 10 per wake-up) is in memory meanwhile,
//! as for any packets. This needs no change to rumqttc (`vendor/rumqttc` stays as D12 says).

use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::{EventLoop, MqttState};

/// The Topic Alias Maximum ingestd announces: none.
pub const TOPIC_ALIAS_MAX: u16 = 0;

/// The topic alias a PUBLISH carries beyond what ingestd announced, if any (with a maximum of 0,
/// any alias: 0 itself is never valid).
pub fn unannounced(publish: &Publish) -> Option<u16> {
    let alias = publish.properties.as_ref()?.topic_alias?;
    (alias == 0 || alias > TOPIC_ALIAS_MAX).then_some(alias)
}

/// Closes the connection and gives rumqttc a fresh session state: the aliases it stored (and
/// the frames they hold) and the packets it had read but not yet handed over are dropped. The
/// next `poll()` reconnects. What was dropped unacked the broker sends again (QoS 1, persistent
/// session), and a well-behaved broker sends it without an alias.
pub fn drop_connection(eventloop: &mut EventLoop) {
    eventloop.clean();
    let inflight = eventloop
        .options
        .get_outgoing_inflight_upper_limit()
        .unwrap_or(u16::MAX);
    eventloop.state = MqttState::new(inflight, eventloop.options.manual_acks());
}

#[cfg(test)]
mod tests {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS;

    use super::*;

    fn publish(alias: Option<u16>) -> Publish {
        let mut p = Publish::new("site/a/sensor/t", QoS::AtLeastOnce, "1", None);
        p.properties = alias.map(|a| PublishProperties {
            topic_alias: Some(a),
            ..PublishProperties::default()
        });
        p
    }

    #[test]
    fn any_alias_is_unannounced_when_the_maximum_is_zero() {
        assert_eq!(unannounced(&publish(None)), None);
        assert_eq!(unannounced(&publish(Some(1))), Some(1));
        assert_eq!(unannounced(&publish(Some(0))), Some(0));
        assert_eq!(unannounced(&publish(Some(u16::MAX))), Some(u16::MAX));
        let mut no_alias = publish(Some(1));
        no_alias.properties.as_mut().unwrap().topic_alias = None;
        assert_eq!(unannounced(&no_alias), None);
    }
}
