//! emitd on secured NATS wires, as a real process against real nats-servers that demand them:
//! TLS with client certificates (made at test time by rcgen), a token, a user and password, an
//! NKey, each read from a secret file; every bad variant refused, counted by cause, with emitd
//! still running and its connection gauge at 0.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use records::names::gauge;
use test_brokers::pki::{CertFiles, Pki};
use test_brokers::tls::nats_tls;
use test_brokers::{wait_for, Nats, TempDir};

/// The tests below that send credentials to a nats-server on loopback without TLS say so: by
/// default emitd refuses credentials over a plaintext wire.
const PLAINTEXT_OK: &str = "allow_plaintext_credentials = true\n";

fn secret(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A client certificate and key copied to `dir`, the key as a secret file.
fn client_files(dir: &Path, files: &CertFiles) -> (PathBuf, PathBuf) {
    let cert = dir.join("client.pem");
    std::fs::copy(&files.cert, &cert).unwrap();
    let key = secret(dir, "client.key", &std::fs::read_to_string(&files.key).unwrap());
    (cert, key)
}

/// Pushes 40 aggregates and checks that all 40 arrive.
fn delivers(p: &mut Pipeline, sub: &Collector) {
    p.start_emitd();
    let aggs = aggregates(40);
    p.push(&aggs);
    assert_eq!(sub.wait_count(aggs.len()).len(), aggs.len());
    wait_for("the connected gauge", PATIENCE, || {
        (p.counter(gauge::NATS_CONNECTED) == 1).then_some(())
    });
    assert_eq!(p.counter(gauge::NATS_FAILURE), gauge::failure::NONE);
}

/// Starts emitd and waits until `counter` counts two refusals; emitd must still run and
/// report itself not connected, for that cause.
fn refused(p: &mut Pipeline, counter: &str, cause: u64) {
    p.start_emitd();
    wait_for(&format!("{counter} to count refusals"), PATIENCE, || {
        (p.counter(counter) >= 2).then_some(())
    });
    assert!(p.emitd().alive(), "emitd keeps running");
    assert_eq!(p.counter(gauge::NATS_CONNECTED), 0);
    assert_eq!(p.counter(gauge::NATS_FAILURE), cause);
}

#[test]
fn tls_with_client_certificates_delivers_and_each_bad_certificate_is_refused_and_counted() {
    let pki = Pki::new("nats-tls");
    let nats = Nats::start_configured(&nats_tls(&pki, &pki.server, true));
    let creds = TempDir::new("nats-tls-creds");
    let (cert, key) = client_files(creds.path(), &pki.client);
    let settings = |ca: &Path, cert: &Path, key: &Path| {
        format!(
            "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            ca.display(),
            cert.display(),
            key.display()
        )
    };
    let mut good = Pipeline::new("tls-good", &nats.url_with("tls"), &settings(&pki.ca, &cert, &key), 64);
    let (ca, c, k) = (pki.ca.clone(), pki.client.cert.clone(), pki.client.key.clone());
    let sub = Collector::start_with(
        &nats.url_with("tls"),
        &format!("{}.>", good.subject_prefix),
        move || {
            async_nats::ConnectOptions::new()
                .require_tls(true)
                .add_root_certificates(ca)
                .add_client_certificate(c, k)
        },
    );
    delivers(&mut good, &sub);

    // A client certificate from another CA: the server refuses it.
    let bad_dir = TempDir::new("nats-tls-bad");
    let (cert, key) = client_files(bad_dir.path(), &pki.client_other_ca);
    let mut p = Pipeline::new(
        "tls-other-ca",
        &nats.url_with("tls"),
        &settings(&pki.ca, &cert, &key),
        64,
    );
    refused(&mut p, "nats.tls_errors", gauge::failure::TLS);

    // Our CA file does not hold the server's CA.
    let (cert, key) = client_files(creds.path(), &pki.client);
    let mut p = Pipeline::new(
        "tls-wrong-ca",
        &nats.url_with("tls"),
        &settings(&pki.other_ca, &cert, &key),
        64,
    );
    refused(&mut p, "nats.tls_errors", gauge::failure::TLS);

    // An expired server certificate.
    let expired = Nats::start_configured(&nats_tls(&pki, &pki.server_expired, false));
    let mut p = Pipeline::new(
        "tls-expired",
        &expired.url_with("tls"),
        &format!("ca_file = \"{}\"\n", pki.ca.display()),
        64,
    );
    refused(&mut p, "nats.tls_errors", gauge::failure::TLS);
}

#[test]
fn token_user_password_and_nkey_from_secret_files_deliver_and_wrong_ones_are_counted() {
    let user_key = nkeys::KeyPair::new_user();
    let nats = Nats::start_configured(&format!(
        "authorization {{\n  users = [\n    {{user: \"collector\", password: \"c0llect\"}}\n    \
         {{user: \"telemetry\", password: \"right horse\"}}\n    {{nkey: \"{}\"}}\n  ]\n}}\n",
        user_key.public_key()
    ));
    let token_server = Nats::start_configured("authorization {\n  token: \"t0ken-s3cret\"\n}\n");
    let creds = TempDir::new("nats-auth-creds");
    let collector = |url: &str, p: &Pipeline, token: bool| {
        Collector::start_with(url, &format!("{}.>", p.subject_prefix), move || {
            if token {
                async_nats::ConnectOptions::with_token("t0ken-s3cret".into())
            } else {
                async_nats::ConnectOptions::with_user_and_password("collector".into(), "c0llect".into())
            }
        })
    };

    let token = secret(creds.path(), "token", "t0ken-s3cret\n");
    let mut p = Pipeline::new(
        "token",
        &token_server.url(),
        &format!("token_file = \"{}\"\n{PLAINTEXT_OK}", token.display()),
        64,
    );
    let sub = collector(&token_server.url(), &p, true);
    delivers(&mut p, &sub);

    let password = secret(creds.path(), "password", "right horse\n");
    let mut p = Pipeline::new(
        "userpass",
        &nats.url(),
        &format!(
            "user = \"telemetry\"\npassword_file = \"{}\"\n{PLAINTEXT_OK}",
            password.display()
        ),
        64,
    );
    let sub = collector(&nats.url(), &p, false);
    delivers(&mut p, &sub);

    let seed = secret(creds.path(), "nkey.seed", &format!("{}\n", user_key.seed().unwrap()));
    let mut p = Pipeline::new(
        "nkey",
        &nats.url(),
        &format!("nkey_seed_file = \"{}\"\n{PLAINTEXT_OK}", seed.display()),
        64,
    );
    let sub = collector(&nats.url(), &p, false);
    delivers(&mut p, &sub);

    // Wrong secrets: refused, counted as auth, emitd keeps running.
    let wrong = secret(creds.path(), "wrong-password", "wrong horse\n");
    let mut p = Pipeline::new(
        "wrong-password",
        &nats.url(),
        &format!(
            "user = \"telemetry\"\npassword_file = \"{}\"\n{PLAINTEXT_OK}",
            wrong.display()
        ),
        64,
    );
    refused(&mut p, "nats.auth_errors", gauge::failure::AUTH);
    let wrong_token = secret(creds.path(), "wrong-token", "nope\n");
    let mut p = Pipeline::new(
        "wrong-token",
        &token_server.url(),
        &format!("token_file = \"{}\"\n{PLAINTEXT_OK}", wrong_token.display()),
        64,
    );
    refused(&mut p, "nats.auth_errors", gauge::failure::AUTH);
    let stranger = secret(
        creds.path(),
        "stranger.seed",
        &format!("{}\n", nkeys::KeyPair::new_user().seed().unwrap()),
    );
    let mut p = Pipeline::new(
        "wrong-nkey",
        &nats.url(),
        &format!("nkey_seed_file = \"{}\"\n{PLAINTEXT_OK}", stranger.display()),
        64,
    );
    refused(&mut p, "nats.auth_errors", gauge::failure::AUTH);
}

/// Runs emitd with `config`, which it must refuse at start (exit 2); returns its stderr.
fn refused_at_start(config: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emitd"))
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

#[test]
fn a_server_that_offers_no_tls_is_refused_when_tls_is_configured_and_never_gets_the_token() {
    // A plaintext nats-server that accepts this token: emitd would deliver if it sent it.
    let nats = Nats::start_configured("authorization {\n  token: \"t0ken-s3cret\"\n}\n");
    let pki = Pki::new("nats-no-tls");
    let creds = TempDir::new("nats-no-tls-creds");
    let token = secret(creds.path(), "token", "t0ken-s3cret\n");
    // nats:// with a CA file: TLS is required of the server, whatever the URL's scheme says.
    let mut p = Pipeline::new(
        "no-tls",
        &nats.url(),
        &format!(
            "ca_file = \"{}\"\ntoken_file = \"{}\"\n",
            pki.ca.display(),
            token.display()
        ),
        64,
    );
    refused(&mut p, "nats.tls_errors", gauge::failure::TLS);
    assert_eq!(p.counter("nats.auth_errors"), 0, "no credentials were ever sent");
}

#[test]
fn credentials_over_a_plaintext_wire_are_refused_at_start_naming_the_key() {
    let dir = TempDir::new("nats-plaintext-creds");
    let token = secret(dir.path(), "token", "t0ken-s3cret\n");
    let config = dir.path().join("telemetry.toml");
    for (emitd, key) in [
        (format!("token_file = \"{}\"\n", token.display()), "emitd.token_file"),
        ("nats = \"nats://u:hunter2@127.0.0.1:4222\"\n".to_owned(), "emitd.nats"),
    ] {
        std::fs::write(&config, format!("[emitd]\n{emitd}")).unwrap();
        let err = refused_at_start(&config);
        assert!(
            err.contains(key) && err.contains("allow_plaintext_credentials"),
            "{err}"
        );
        assert!(!err.contains("hunter2") && !err.contains("t0ken-s3cret"), "{err}");
    }
}

#[test]
fn secret_files_readable_by_others_are_refused_naming_key_and_file() {
    let dir = TempDir::new("nats-secret-perms");
    let token = dir.path().join("token");
    std::fs::write(&token, "t\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o604)).unwrap();
    let config = dir.path().join("telemetry.toml");
    std::fs::write(&config, format!("[emitd]\ntoken_file = \"{}\"\n", token.display())).unwrap();
    let err = refused_at_start(&config);
    assert!(
        err.contains("emitd.token_file") && err.contains(token.to_str().unwrap()),
        "{err}"
    );
}

/// A `.creds` file as `nsc` writes it: the user's JWT and NKey seed.
fn creds_text(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[test]
fn a_credentials_file_authenticates_in_operator_mode_and_one_from_another_account_is_refused() {
    use nats_io_jwt::{Account, KeyPair, Operator, OperatorLimits, Token, User};
    // Operator, account and users, signed at test time (nats-io-jwt, nkeys).
    let operator = KeyPair::new_operator();
    let operator_jwt = Token::new(operator.public_key())
        .name("test-operator")
        .claims(Operator::default())
        .sign(&operator);
    let account = KeyPair::new_account();
    let account_jwt = Token::new(account.public_key())
        .name("telemetry")
        // The default limits of an account claim are all 0 (no connections): none instead.
        .claims(
            Account::builder()
                .limits(OperatorLimits::default())
                .try_into()
                .map(|a: Account| a)
                .unwrap(),
        )
        .sign(&operator);
    let user_creds = |signer: &KeyPair| {
        let user = KeyPair::new_user();
        let claims = User {
            bearer_token: false, // the server must check our signature with the seed
            ..User::default()
        };
        let jwt = Token::new(user.public_key()).name("emitd").claims(claims).sign(signer);
        creds_text(&jwt, &user.seed().unwrap())
    };
    let nats = Nats::start_configured(&format!(
        "operator: \"{operator_jwt}\"\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{account_jwt}\"\n}}\n",
        account.public_key()
    ));
    let dir = TempDir::new("nats-creds");
    let good = secret(dir.path(), "emitd.creds", &user_creds(&account));
    let collector_creds = user_creds(&account);
    let mut p = Pipeline::new(
        "creds",
        &nats.url(),
        &format!("credentials_file = \"{}\"\n{PLAINTEXT_OK}", good.display()),
        64,
    );
    let sub = Collector::start_with(&nats.url(), &format!("{}.>", p.subject_prefix), move || {
        async_nats::ConnectOptions::with_credentials(&collector_creds).unwrap()
    });
    delivers(&mut p, &sub);

    // A user signed by an account the server does not know.
    let stranger = secret(dir.path(), "stranger.creds", &user_creds(&KeyPair::new_account()));
    let mut p = Pipeline::new(
        "creds-stranger",
        &nats.url(),
        &format!("credentials_file = \"{}\"\n{PLAINTEXT_OK}", stranger.display()),
        64,
    );
    refused(&mut p, "nats.auth_errors", gauge::failure::AUTH);
}
