//! The MQTT 5 session as the config describes it: broker address and TLS, credentials, session
//! settings, limits, and the subscription filters (with an optional shared-subscription group).

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Filter;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};
use telemetry_config::Ingestd;

/// Largest MQTT packet ingestd accepts, announced to the broker as the MQTT 5 Maximum Packet
/// Size. It is far above `max_payload` on purpose: a message between the two still arrives and
/// is counted as `payload_too_large`, while a broker drops a packet above the announced size
/// without telling us. rumqttc's own default (10 KiB) would instead end the connection.
pub const MAX_PACKET: u32 = 1 << 20;

/// QoS 1 messages the broker may have in flight to us before our acks (MQTT 5 Receive Maximum).
pub const RECEIVE_MAXIMUM: u16 = 1000;

/// Capacity of rumqttc's request channel. Acks go through it from the same task that polls the
/// event loop, so it must never be full: at most `RECEIVE_MAXIMUM` acks plus a few subscribes
/// can be outstanding.
pub const REQUEST_CAPACITY: usize = 2 * RECEIVE_MAXIMUM as usize + 16;

/// Host, port and whether TLS is used, from `mqtt://host:port` or `mqtts://host:port`.
pub fn parse_broker(url: &str) -> Result<(String, u16, bool), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("broker {url:?} is not a URL"))?;
    let tls = match scheme {
        "mqtt" => false,
        "mqtts" => true,
        _ => return Err(format!("broker {url:?}: scheme must be mqtt or mqtts")),
    };
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .ok_or_else(|| format!("broker {url:?} has no port"))?;
    let port = port.parse().map_err(|_| format!("broker {url:?} has a bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port, tls))
}

/// The rumqttc options for this config, for the pipeline named `instance`.
pub fn options(config: &Ingestd, instance: &str) -> Result<MqttOptions, String> {
    let (host, port, tls) = parse_broker(&config.broker)?;
    let mut opts = MqttOptions::new(config.client_id_for(instance), host, port);
    opts.set_keep_alive(Duration::from_secs(config.keep_alive_s.max(5)))
        .set_clean_start(config.clean_start)
        .set_manual_acks(true)
        .set_max_packet_size(Some(MAX_PACKET))
        .set_receive_maximum(Some(RECEIVE_MAXIMUM))
        // Announced explicitly, and enforced by the MQTT loop (`topic_alias`).
        .set_topic_alias_max(Some(super::topic_alias::TOPIC_ALIAS_MAX))
        .set_request_channel_capacity(REQUEST_CAPACITY);
    if config.session_expiry_s > 0 {
        opts.set_session_expiry_interval(Some(config.session_expiry_s));
    }
    if !config.username.is_empty() {
        let password = if config.password_file.is_empty() {
            String::new()
        } else {
            telemetry_config::read_secret("ingestd.password_file", &config.password_file).map_err(|e| e.to_string())?
        };
        opts.set_credentials(config.username.clone(), password);
    }
    if tls {
        let files = wire_tls::ClientFiles {
            key: "ingestd",
            ca_file: &config.ca_file,
            cert_file: &config.cert_file,
            key_file: &config.key_file,
            server_name: &config.tls_server_name,
        };
        opts.set_transport(Transport::Tls(TlsConfiguration::Rustls(wire_tls::client_config(
            &files,
        )?)));
    }
    Ok(opts)
}

/// The subscription filters: each configured filter at the configured QoS, as
/// `$share/<group>/<filter>` when a shared-subscription group is set.
pub fn filters(config: &Ingestd) -> Vec<Filter> {
    let qos = if config.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    config
        .topics
        .iter()
        .map(|t| {
            let path = if config.share_group.is_empty() {
                t.clone()
            } else {
                format!("$share/{}/{}", config.share_group, t)
            };
            Filter::new(path, qos)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883, false)
        );
        assert_eq!(
            parse_broker("mqtts://broker.example:8883/").unwrap(),
            ("broker.example".into(), 8883, true)
        );
        assert_eq!(parse_broker("mqtt://[::1]:1883").unwrap(), ("::1".into(), 1883, false));
        assert!(parse_broker("http://x:1").is_err());
        assert!(parse_broker("mqtt://x").is_err());
    }

    #[test]
    fn shared_subscriptions_wrap_every_filter() {
        let mut c = Ingestd {
            topics: vec!["site/+/sensor/+".into(), "x/#".into()],
            ..Ingestd::default()
        };
        assert_eq!(filters(&c)[0].path, "site/+/sensor/+");
        c.share_group = "g1".into();
        let f = filters(&c);
        assert_eq!(
            (f[0].path.as_str(), f[1].path.as_str()),
            ("$share/g1/site/+/sensor/+", "$share/g1/x/#")
        );
        assert_eq!(f[0].qos, QoS::AtLeastOnce);
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_error() {
        let c = Ingestd {
            broker: "mqtts://127.0.0.1:8883".into(),
            ca_file: "/nonexistent/ca.pem".into(),
            ..Ingestd::default()
        };
        let e = options(&c, "t").err().unwrap();
        assert!(e.contains("ingestd.ca_file"), "{e}");
    }

    #[test]
    fn no_topic_alias_is_announced() {
        let o = options(&Ingestd::default(), "t").unwrap();
        assert_eq!(o.topic_alias_max(), Some(0));
    }
}
