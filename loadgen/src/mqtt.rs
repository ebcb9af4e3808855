//! A minimal MQTT 5 publisher over a buffered TCP stream: CONNECT, PUBLISH at QoS 0 or 1,
//! DISCONNECT. Frames are written into a buffer and flushed in large writes, so the generator
//! spends its CPU on the broker's behalf rather than on system calls. At QoS 1 a reader thread
//! counts PUBACKs and the writer keeps at most the broker's Receive Maximum unacknowledged.

use std::io::{self, BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Appends an MQTT variable byte integer (also for tests that play a broker).
pub fn varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// The CONNECT packet (MQTT 5, clean start, no properties).
pub fn connect_packet(client_id: &str, keep_alive_s: u16) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, b"MQTT");
    body.push(5); // protocol level
    body.push(0x02); // clean start
    body.extend_from_slice(&keep_alive_s.to_be_bytes());
    body.push(0); // no properties
    string(&mut body, client_id.as_bytes());
    let mut p = vec![0x10];
    varint(&mut p, body.len());
    p.extend_from_slice(&body);
    p
}

/// Appends a PUBLISH packet to `out`. `packet_id` is used only at QoS 1.
pub fn publish_packet(
    out: &mut Vec<u8>,
    topic: &str,
    payload: &[u8],
    qos: u8,
    packet_id: u16,
    content_type: Option<&str>,
) {
    let props_len = content_type.map_or(0, |c| 3 + c.len());
    let len = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + 1 + props_len + payload.len();
    out.push(0x30 | (qos << 1));
    varint(out, len);
    string(out, topic.as_bytes());
    if qos > 0 {
        out.extend_from_slice(&packet_id.to_be_bytes());
    }
    varint(out, props_len);
    if let Some(c) = content_type {
        out.push(0x03);
        string(out, c.as_bytes());
    }
    out.extend_from_slice(payload);
}

/// Reads one packet: (first byte, body).
fn read_packet(r: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    let kind = b[0];
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        r.read_exact(&mut b)?;
        len |= ((b[0] & 0x7f) as usize) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad remaining length"));
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok((kind, body))
}

/// The Receive Maximum a CONNACK announces (65535 when absent), or the refusal.
pub fn parse_connack(body: &[u8]) -> io::Result<u16> {
    if body.len() < 2 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "short CONNACK"));
    }
    if body[1] != 0 {
        return Err(io::Error::other(format!(
            "broker refused the connection: reason {:#x}",
            body[1]
        )));
    }
    let mut receive_max = 65535u16;
    let mut i = 2;
    // properties length (varint), then properties
    let mut plen = 0usize;
    let mut shift = 0;
    while i < body.len() {
        let b = body[i];
        i += 1;
        plen |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = (i + plen).min(body.len());
    while i < end {
        let id = body[i];
        i += 1;
        match id {
            0x21 if i + 2 <= end => {
                receive_max = u16::from_be_bytes([body[i], body[i + 1]]);
                i += 2;
            }
            // Properties with a 1-byte value.
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => i += 1,
            // 2-byte values.
            0x13 | 0x22 => i += 2,
            // 4-byte values.
            0x02 | 0x11 | 0x18 | 0x27 => i += 4,
            // Strings and binary data.
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F if i + 2 <= end => {
                i += 2 + u16::from_be_bytes([body[i], body[i + 1]]) as usize;
            }
            // User property: two strings.
            0x26 if i + 2 <= end => {
                i += 2 + u16::from_be_bytes([body[i], body[i + 1]]) as usize;
                if i + 2 <= end {
                    i += 2 + u16::from_be_bytes([body[i], body[i + 1]]) as usize;
                }
            }
            _ => break,
        }
    }
    Ok(receive_max)
}

/// One publishing connection.
pub struct Publisher {
    out: BufWriter<TcpStream>,
    frame: Vec<u8>,
    qos: u8,
    next_id: u16,
    sent_qos1: u64,
    acked: Arc<AtomicU64>,
    receive_max: u64,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    /// Connects to `host:port` and waits for the CONNACK.
    pub fn connect(host: &str, port: u16, client_id: &str, qos: u8) -> io::Result<Publisher> {
        let stream = TcpStream::connect((host, port))?;
        stream.set_nodelay(true)?;
        let mut reader = stream.try_clone()?;
        (&stream).write_all(&connect_packet(client_id, 60))?;
        let (kind, body) = read_packet(&mut reader)?;
        if kind >> 4 != 2 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "expected CONNACK"));
        }
        let receive_max = u64::from(parse_connack(&body)?.max(1));
        let acked = Arc::new(AtomicU64::new(0));
        let counter = acked.clone();
        let reader = std::thread::spawn(move || {
            while let Ok((kind, _)) = read_packet(&mut reader) {
                if kind >> 4 == 4 {
                    counter.fetch_add(1, Ordering::Release);
                }
            }
        });
        Ok(Publisher {
            out: BufWriter::with_capacity(256 * 1024, stream),
            frame: Vec::with_capacity(512),
            qos,
            next_id: 0,
            sent_qos1: 0,
            acked,
            receive_max,
            reader: Some(reader),
        })
    }

    /// Queues one message (written to the socket when the buffer fills or on flush).
    pub fn publish(&mut self, topic: &str, payload: &[u8], content_type: Option<&str>) -> io::Result<()> {
        self.frame.clear();
        if self.qos > 0 {
            while self.sent_qos1 - self.acked.load(Ordering::Acquire) >= self.receive_max {
                self.out.flush()?;
                std::thread::sleep(Duration::from_micros(50));
            }
            self.next_id = self.next_id.wrapping_add(1).max(1);
            self.sent_qos1 += 1;
        }
        publish_packet(&mut self.frame, topic, payload, self.qos, self.next_id, content_type);
        self.out.write_all(&self.frame)
    }

    /// Writes out everything queued.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes, waits (up to `timeout`) for every QoS 1 ack, sends DISCONNECT. Returns the acks
    /// still missing (0 at QoS 0).
    pub fn finish(mut self, timeout: Duration) -> io::Result<u64> {
        self.out.flush()?;
        let deadline = Instant::now() + timeout;
        while self.acked.load(Ordering::Acquire) < self.sent_qos1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let missing = self.sent_qos1 - self.acked.load(Ordering::Acquire).min(self.sent_qos1);
        self.out.write_all(&[0xe0, 0x00])?;
        self.out.flush()?;
        let _ = self.out.get_ref().shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_right_lengths() {
        let mut out = Vec::new();
        publish_packet(&mut out, "a/b", &[1, 2, 3], 1, 7, None);
        assert_eq!(out, [0x32, 11, 0, 3, b'a', b'/', b'b', 0, 7, 0, 1, 2, 3]);
        out.clear();
        publish_packet(&mut out, "t", &[0; 200], 0, 0, Some("application/json"));
        assert_eq!(out[0], 0x30);
        assert_eq!((out[1], out[2]), (0x80 | (223 % 128) as u8, (223 / 128) as u8));
        assert_eq!(connect_packet("c", 60)[0], 0x10);
    }

    #[test]
    fn connack_receive_maximum() {
        assert_eq!(parse_connack(&[0, 0, 0]).unwrap(), 65535);
        assert_eq!(parse_connack(&[0, 0, 3, 0x21, 0, 20]).unwrap(), 20);
        assert_eq!(parse_connack(&[0, 0, 5, 0x24, 1, 0x21, 0x01, 0x00]).unwrap(), 256);
        assert!(parse_connack(&[0, 0x87, 0]).is_err());
    }
}
