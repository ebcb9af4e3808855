//! Certificates made at test time (with rcgen), for brokers that demand TLS and for the
//! pipeline's clients: a CA, server certificates for 127.0.0.1 and localhost, a client
//! certificate, and the bad variants a test needs (expired, not yet valid, wrong name, signed
//! by another CA). Nothing secret is committed; everything lives in a [`TempDir`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::TempDir;

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
}

/// Every certificate a TLS test needs, in one temporary directory.
pub struct Pki {
    dir: TempDir,
    /// The trusted CA's certificate (PEM): what clients and brokers are told to trust.
    pub ca: PathBuf,
    /// Another CA, trusted by nobody.
    pub other_ca: PathBuf,
    /// Server certificate for 127.0.0.1, ::1 and localhost, by the trusted CA.
    pub server: CertFiles,
    /// Server certificate that expired in 2021.
    pub server_expired: CertFiles,
    /// Server certificate valid only from 2090.
    pub server_not_yet_valid: CertFiles,
    /// Server certificate for `broker.example` only (not for 127.0.0.1 or localhost).
    pub server_other_name: CertFiles,
    /// Client certificate (CN `telemetry`) by the trusted CA.
    pub client: CertFiles,
    /// Client certificate by the other CA.
    pub client_other_ca: CertFiles,
    /// Client certificate by the trusted CA that expired in 2021.
    pub client_expired: CertFiles,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn leaf_params(cn: &str, names: &[&str], server: bool) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().expect("dns name")),
        })
        .collect();
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    p
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write pem");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod pem");
}

impl Pki {
    /// Makes every certificate, in a new temporary directory named after `test`.
    pub fn new(test: &str) -> Pki {
        let dir = TempDir::new(&format!("pki-{test}"));
        let d = dir.path().to_owned();
        let ca_key = KeyPair::generate().expect("key");
        let ca_cert = ca_params("telemetry test CA").self_signed(&ca_key).expect("ca");
        let ca = Issuer::new(ca_params("telemetry test CA"), ca_key);
        let other_key = KeyPair::generate().expect("key");
        let other_cert = ca_params("untrusted test CA").self_signed(&other_key).expect("ca");
        let other = Issuer::new(ca_params("untrusted test CA"), other_key);
        write(&d.join("ca.pem"), &ca_cert.pem(), 0o644);
        write(&d.join("other-ca.pem"), &other_cert.pem(), 0o644);

        let leaf = |name: &str, params: CertificateParams, issuer: &Issuer<'_, KeyPair>| {
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, issuer).expect("sign");
            let files = CertFiles {
                cert: d.join(format!("{name}.pem")),
                key: d.join(format!("{name}.key")),
            };
            write(&files.cert, &cert.pem(), 0o644);
            // Client keys are secrets (0600, as ingestd demands); a server key is readable so that
            // a broker that drops privileges (mosquitto started as root) can still load it.
            write(
                &files.key,
                &key.serialize_pem(),
                if name.starts_with("server") { 0o644 } else { 0o600 },
            );
            files
        };
        let local = ["127.0.0.1", "::1", "localhost"];
        let server = leaf("server", leaf_params("localhost", &local, true), &ca);
        let mut p = leaf_params("localhost", &local, true);
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2021, 1, 1);
        let server_expired = leaf("server-expired", p, &ca);
        let mut p = leaf_params("localhost", &local, true);
        p.not_before = date_time_ymd(2090, 1, 1);
        p.not_after = date_time_ymd(2091, 1, 1);
        let server_not_yet_valid = leaf("server-future", p, &ca);
        let server_other_name = leaf(
            "server-other-name",
            leaf_params("broker.example", &["broker.example"], true),
            &ca,
        );
        let client = leaf("client", leaf_params("telemetry", &[], false), &ca);
        let client_other_ca = leaf("client-other-ca", leaf_params("telemetry", &[], false), &other);
        let mut p = leaf_params("telemetry", &[], false);
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2021, 1, 1);
        let client_expired = leaf("client-expired", p, &ca);
        Pki {
            ca: d.join("ca.pem"),
            other_ca: d.join("other-ca.pem"),
            server,
            server_expired,
            server_not_yet_valid,
            server_other_name,
            client,
            client_other_ca,
            client_expired,
            dir,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
