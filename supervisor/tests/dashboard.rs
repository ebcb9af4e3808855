//! deploy/grafana/telemetry.json against a real scrape: every metric family the dashboard
//! queries is in the `/metrics` answer of a running pipeline (real mosquitto, nats-server and
//! stages), so that the dashboard and the endpoint cannot drift apart.

use std::collections::BTreeSet;

use pipeline_tests::{loadgen, scrape_metrics, Pipeline, PATIENCE};
use records::names::{counter, stage};
use test_brokers::{free_port, wait_for, Mosquitto, Nats};

/// The metric names (`telemetry_...`) in the dashboard's queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/telemetry.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read the dashboard")).expect("dashboard JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        exprs.push(variable["definition"].as_str().expect("definition").to_owned());
    }
    let mut names = BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("telemetry_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

/// The families (`# TYPE name kind`) of a Prometheus text answer.
fn scraped_families(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_metric_the_dashboard_queries_is_in_a_real_scrape() {
    let wanted = dashboard_metrics();
    assert!(
        wanted.len() >= 10,
        "the dashboard's queries name its metrics: {wanted:?}"
    );

    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let port = free_port();
    let p = Pipeline::configure(
        "dashboard",
        &mqtt,
        &nats,
        &format!("[supervisor]\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
    );
    let _supervisor = p.supervise(&[]);
    p.wait_running();
    loadgen(&mqtt, "--devices 1 --sensors 1 --count 10 --qos 1");
    // A drop (ingestd: a topic longer than a raw record holds) and an error (decoded: not JSON
    // or CBOR), so that the drop and error families have samples.
    let long_device = "d".repeat(records::RAW_TOPIC_MAX);
    mqtt.publish_lines(&format!("site/{long_device}/sensor/t"), &["{}".into()], 1);
    mqtt.publish_lines("site/d1/sensor/t", &["not a reading".into()], 1);
    wait_for("ingestd to count", PATIENCE, || {
        (p.counter(stage::INGESTD, counter::RECEIVED) == 12).then_some(())
    });
    let families = wait_for("a scrape with the drop, the error and aggd's keys", PATIENCE, || {
        let families = scraped_families(&scrape_metrics(port)?);
        [
            "telemetry_stage_dropped_total",
            "telemetry_stage_errors_total",
            "telemetry_aggd_keys",
        ]
        .iter()
        .all(|f| families.contains(*f))
        .then_some(families)
    });

    for name in &wanted {
        assert!(
            families.contains(name),
            "the dashboard queries {name}, not in the scrape: {families:?}"
        );
    }
}
