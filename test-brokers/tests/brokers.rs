//! The brokers start on free ports, restart on the same port, and are gone after drop.

use std::net::TcpStream;

use test_brokers::{Mosquitto, Nats, Tansu};

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn mosquitto_starts_restarts_and_stops() {
    let mut m = Mosquitto::start();
    let port = m.port();
    assert!(listening(port));
    let pid = m.pid();
    m.restart();
    assert!(listening(port));
    assert_ne!(m.pid(), pid);
    drop(m);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || !listening(port));
}

#[test]
fn nats_starts_with_and_without_jetstream() {
    let a = Nats::start();
    let b = Nats::start_jetstream();
    assert_ne!(a.port(), b.port());
    assert!(listening(a.port()) && listening(b.port()));
    let port = a.port();
    drop(a);
    assert!(!listening(port));
}

#[test]
fn tansu_starts_creates_topics_and_stops() {
    let a = Tansu::start();
    let b = Tansu::start();
    assert_ne!(a.port(), b.port());
    assert!(listening(a.port()) && listening(b.port()));
    a.create_topic("t.one", 2);
    let port = a.port();
    drop(a);
    assert!(!listening(port));
}
