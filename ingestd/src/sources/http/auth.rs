//! The HTTP door's bearer token (`[ingestd.http] token_file`): `Authorization: Bearer <token>`,
//! the scheme matched case-insensitively (RFC 9110, 11.1), the token compared in a time that
//! depends on neither where nor whether the given token differs from ours, its length included.

/// The token requests must carry.
pub struct BearerToken {
    token: Vec<u8>,
}

impl BearerToken {
    /// The token read from `token_file` (white space around it is not part of it). An empty one
    /// would let `Bearer ` in: refused.
    pub fn new(text: &str) -> Result<BearerToken, String> {
        let token = text.trim();
        if token.is_empty() {
            return Err("ingestd.http.token_file: the token is empty".into());
        }
        Ok(BearerToken {
            token: token.as_bytes().to_vec(),
        })
    }

    /// Whether an `Authorization` header value carries our token.
    pub fn admits(&self, authorization: &[u8]) -> bool {
        let Some(space) = authorization.iter().position(|&b| b == b' ') else {
            return false;
        };
        let (scheme, rest) = authorization.split_at(space);
        let given = rest.trim_ascii_start();
        // The scheme is public; only the token's comparison must not leak.
        scheme.eq_ignore_ascii_case(b"bearer") & same_secret(given, &self.token)
    }
}

/// `given == expected`, in a time that depends only on the lengths (never on where the bytes
/// differ, nor on whether the lengths do): every byte of `expected` is compared, against a zero
/// where `given` is shorter.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(g ^ e);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        let t = BearerToken::new("s3cret-token\n").unwrap();
        for ok in [
            &b"Bearer s3cret-token"[..],
            b"bearer s3cret-token",
            b"BEARER  s3cret-token",
        ] {
            assert!(t.admits(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"Bearer s3cret-tokeN"[..],
            b"Bearer s3cret-toke",
            b"Bearer s3cret-token2",
            b"Bearer s3cret-token\0",
            b"Bearer ",
            b"Bearer",
            b"Basic s3cret-token",
            b"Bearers3cret-token",
            b"",
        ] {
            assert!(!t.admits(bad), "{}", String::from_utf8_lossy(bad));
        }
        assert!(BearerToken::new(" \n").is_err(), "an empty token would admit `Bearer `");
    }

    #[test]
    fn same_secret_compares_every_byte_whatever_the_lengths() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        // A given token that is a prefix padded with zeros is not ours.
        assert!(!same_secret(b"ab\0", b"ab"));
        assert!(!same_secret(b"ab", b"ab\0"));
    }
}
