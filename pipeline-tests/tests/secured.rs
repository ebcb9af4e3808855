//! ingestd on secured MQTT wires, against a real mosquitto that demands them: mutual TLS with
//! certificates made at test time (rcgen), every bad certificate refused and counted by cause
//! while the stage stays up, a password read from a secret file, and a rotated file taking
//! effect with `telemetryctl restart ingestd`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use pipeline_tests::{expectations, field, loadgen, Collector, Pipeline, PATIENCE};
use records::names::{gauge, session, stage};
use test_brokers::pki::{CertFiles, Pki};
use test_brokers::tls::{mosquitto_password, mosquitto_tls};
use test_brokers::{binary, wait_for, Mosquitto, Nats, TempDir};

/// Copies a certificate and key to the paths the config names (the key as a secret file).
fn install(files: &CertFiles, dir: &Path) {
    std::fs::copy(&files.cert, dir.join("client.pem")).unwrap();
    std::fs::copy(&files.key, dir.join("client.key")).unwrap();
    std::fs::set_permissions(dir.join("client.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn telemetryctl(p: &Pipeline, args: &[&str]) -> (i32, String) {
    let out = Command::new(binary("telemetryctl"))
        .arg("--config")
        .arg(&p.config_path)
        .args(args)
        .output()
        .expect("telemetryctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Publishes a small known load on the broker's plain listener and checks that the aggregates
/// cover it exactly.
fn delivers_exactly(p: &Pipeline, mqtt: &Mosquitto, collector: &Collector, tag: &str) {
    let dir = TempDir::new(&format!("secured-{tag}"));
    let expect = dir.path().join("expect.jsonl");
    let before = p.counter(stage::AGGD, records::names::counter::FORWARDED);
    let line = loadgen(
        mqtt,
        &format!(
            "--devices 3 --sensors 2 --count 600 --qos 1 --expect {}",
            expect.display()
        ),
    );
    assert_eq!(field(&line, "sent"), 600.0);
    let expected = expectations(&expect);
    collector.wait_covering("aggregates covering every reading", &expected);
    let fullest = collector.fullest();
    for (key, want) in &expected {
        assert_eq!(fullest[key].num("count"), want["count"].as_f64().unwrap(), "{key:?}");
        assert_eq!(fullest[key].num("max"), want["max"].as_f64().unwrap(), "{key:?}");
    }
    assert_eq!(p.counter(stage::AGGD, records::names::counter::FORWARDED) - before, 600);
}

#[test]
fn mutual_tls_refuses_a_bad_client_certificate_then_a_rotated_one_delivers_exact_aggregates() {
    let pki = Pki::new("mtls");
    let mqtt = Mosquitto::start_with(&[mosquitto_tls(&pki, &pki.server, true)]);
    let nats = Nats::start();
    let creds = TempDir::new("mtls-creds");
    install(&pki.client_other_ca, creds.path());
    let extra = format!(
        "[ingestd]\nbroker = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        mqtt.extra_url(0, "mqtts"),
        pki.ca.display(),
        creds.path().join("client.pem").display(),
        creds.path().join("client.key").display(),
    );
    let p = Pipeline::configure("mtls", &mqtt, &nats, &extra);
    let collector = Collector::start(&nats.url(), &p.subjects());
    let _supervisor = p.supervise(&[]);
    let first = p.wait_running();

    // A client certificate from a CA the broker does not trust: refused at every attempt,
    // counted as TLS, and ingestd stays up (running, not connected, no restarts).
    wait_for("TLS refusals to be counted", PATIENCE, || {
        (p.counter(stage::INGESTD, session::TLS_ERRORS) >= 2).then_some(())
    });
    assert_eq!(p.counter(stage::INGESTD, gauge::MQTT_CONNECTED), 0);
    assert_eq!(p.counter(stage::INGESTD, gauge::MQTT_FAILURE), gauge::failure::TLS);
    let (code, text) = telemetryctl(&p, &["status"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("not connected to mqtt") && text.contains("tls"), "{text}");
    assert_eq!(p.wait_running()[stage::INGESTD], first[stage::INGESTD], "no restart");

    // An expired client certificate from the right CA: refused too.
    install(&pki.client_expired, creds.path());
    let errors = p.counter(stage::INGESTD, session::TLS_ERRORS);
    let (code, text) = telemetryctl(&p, &["restart", "ingestd"]);
    assert_eq!(code, 0, "{text}");
    wait_for("the expired certificate to be refused", PATIENCE, || {
        (p.counter(stage::INGESTD, session::TLS_ERRORS) > errors + 1).then_some(())
    });
    assert_eq!(p.counter(stage::INGESTD, gauge::MQTT_CONNECTED), 0);

    // The good certificate, rotated in; only ingestd restarted.
    install(&pki.client, creds.path());
    let before = p.wait_running();
    let (code, text) = telemetryctl(&p, &["restart", "ingestd"]);
    assert_eq!(code, 0, "{text}");
    let after = p.wait_replaced(&before, stage::INGESTD);
    for s in [stage::DECODED, stage::AGGD, stage::EMITD] {
        assert_eq!(before[s], after[s], "{s} kept running");
    }
    wait_for("ingestd to connect", PATIENCE, || {
        (p.counter(stage::INGESTD, gauge::MQTT_CONNECTED) == 1).then_some(())
    });
    assert_eq!(p.counter(stage::INGESTD, gauge::MQTT_FAILURE), gauge::failure::NONE);
    delivers_exactly(&p, &mqtt, &collector, "mtls");
    let (code, text) = telemetryctl(&p, &["status"]);
    assert_eq!(code, 0, "{text}");
}

/// Starts ingestd alone against a TLS listener presenting `server`, trusting `ca`, and returns
/// the failure gauge once two attempts were refused, or `None` once it connected.
fn server_check(name: &str, pki: &Pki, server: &CertFiles, ca: &Path, server_name: &str) -> Option<u64> {
    let mqtt = Mosquitto::start_with(&[mosquitto_tls(pki, server, false)]);
    let nats = Nats::start();
    let extra = format!(
        "[ingestd]\nbroker = \"{}\"\nca_file = \"{}\"\ntls_server_name = \"{server_name}\"\n",
        mqtt.extra_url(0, "mqtts"),
        ca.display(),
    );
    let mut p = Pipeline::new(name, &mqtt, &nats, &extra);
    p.start(stage::INGESTD);
    let outcome = wait_for("ingestd to connect or be refused twice", PATIENCE, || {
        if p.counter(stage::INGESTD, gauge::MQTT_CONNECTED) == 1 {
            Some(None)
        } else if p.counter(stage::INGESTD, session::TLS_ERRORS) >= 2 {
            Some(Some(p.counter(stage::INGESTD, gauge::MQTT_FAILURE)))
        } else {
            None
        }
    });
    assert!(pipeline_tests::alive(p.pid(stage::INGESTD)), "ingestd stays up");
    assert_eq!(p.stop(stage::INGESTD), Some(0));
    outcome
}

#[test]
fn every_bad_server_certificate_is_refused_and_counted_and_a_name_override_connects() {
    let pki = Pki::new("server-certs");
    let tls = Some(gauge::failure::TLS);
    assert_eq!(server_check("tls-good", &pki, &pki.server, &pki.ca, ""), None);
    assert_eq!(server_check("tls-expired", &pki, &pki.server_expired, &pki.ca, ""), tls);
    assert_eq!(
        server_check("tls-future", &pki, &pki.server_not_yet_valid, &pki.ca, ""),
        tls
    );
    assert_eq!(server_check("tls-wrong-ca", &pki, &pki.server, &pki.other_ca, ""), tls);
    assert_eq!(
        server_check("tls-wrong-name", &pki, &pki.server_other_name, &pki.ca, ""),
        tls
    );
    assert_eq!(
        server_check(
            "tls-name-override",
            &pki,
            &pki.server_other_name,
            &pki.ca,
            "broker.example"
        ),
        None
    );
    // The override changes which name is expected, not whether one is.
    assert_eq!(
        server_check("tls-override-wrong", &pki, &pki.server, &pki.ca, "broker.example"),
        tls
    );
}

#[test]
fn a_password_from_a_secret_file_and_a_wrong_one_counted_until_it_is_rotated() {
    let creds = TempDir::new("password-creds");
    let mqtt = Mosquitto::start_with(&[mosquitto_password(creds.path(), "telemetry", "right horse")]);
    let nats = Nats::start();
    let password = creds.path().join("mqtt-password");
    secret(&password, "wrong horse\n");
    let extra = format!(
        // A password over plaintext loopback: said so explicitly (refused by default).
        "[ingestd]\nbroker = \"{}\"\nusername = \"telemetry\"\npassword_file = \"{}\"\nallow_plaintext_credentials = true\n",
        mqtt.extra_url(0, "mqtt"),
        password.display(),
    );
    let p = Pipeline::configure("password", &mqtt, &nats, &extra);
    let collector = Collector::start(&nats.url(), &p.subjects());
    let _supervisor = p.supervise(&[]);
    p.wait_running();
    wait_for("auth refusals to be counted", PATIENCE, || {
        (p.counter(stage::INGESTD, session::AUTH_ERRORS) >= 2).then_some(())
    });
    assert_eq!(p.counter(stage::INGESTD, gauge::MQTT_FAILURE), gauge::failure::AUTH);
    assert_eq!(p.counter(stage::INGESTD, session::TLS_ERRORS), 0);
    let (code, text) = telemetryctl(&p, &["status"]);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("not connected to mqtt") && text.contains("auth"),
        "{text}"
    );

    secret(&password, "right horse\n");
    let (code, text) = telemetryctl(&p, &["restart", "ingestd"]);
    assert_eq!(code, 0, "{text}");
    wait_for("ingestd to connect", PATIENCE, || {
        (p.counter(stage::INGESTD, gauge::MQTT_CONNECTED) == 1).then_some(())
    });
    delivers_exactly(&p, &mqtt, &collector, "pw");
}

#[test]
fn a_secret_file_readable_by_others_or_missing_is_refused_at_start_naming_key_and_file() {
    let creds = TempDir::new("secret-perms");
    let password = creds.path().join("mqtt-password");
    std::fs::write(&password, "pw\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = creds.path().join("telemetry.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nprefix = \"test-secret-{}\"\n[ingestd]\nusername = \"u\"\npassword_file = \"{}\"\n",
            std::process::id(),
            password.display()
        ),
    )
    .unwrap();
    for program in ["ingestd", "telemetry-supervisor"] {
        let out = Command::new(binary(program))
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{program}: {err}");
        assert!(
            err.contains("ingestd.password_file") && err.contains(password.to_str().unwrap()) && err.contains("others"),
            "{program}: {err}"
        );
        assert!(!err.contains("pw\n"), "never the secret");
    }
    std::fs::remove_file(&password).unwrap();
    let out = Command::new(binary("ingestd"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the secret file"));
}
