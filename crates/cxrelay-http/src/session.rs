//! Dashboard sessions without server state: signing in with an API token (role `read` or
//! `operate`) sets an HttpOnly, SameSite=Strict cookie holding the role, an expiry and a random
//! id, signed with a key derived from the configured tokens (so every replica accepts it, and
//! changing the tokens signs everyone out). Each state-changing form carries a CSRF token: an
//! HMAC of the session id under the same key.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::auth::Role;

/// Name of the session cookie.
pub const COOKIE: &str = "cxr_session";
/// How long a session lasts.
pub const LIFETIME_SECS: u64 = 8 * 3600;

/// A signed-in operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// What the token that signed in may do.
    pub role: Role,
    /// Random id (the CSRF tokens are derived from it).
    pub id: String,
    /// Expiry, seconds since the epoch.
    pub expires: u64,
    /// The CSRF token of its forms.
    pub csrf: String,
}

/// Signs and checks sessions and CSRF tokens.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl Signer {
    /// A signer whose key is derived from `tokens_spec` (the configured tokens).
    pub fn new(tokens_spec: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"cxrelay dashboard session v1\0");
        h.update(tokens_spec.as_bytes());
        Self { key: h.finalize().to_vec() }
    }

    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        for p in parts {
            mac.update(p);
            mac.update(b"\0");
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// A new session for `role`, starting now (seconds since the epoch).
    pub fn start(&self, role: Role, now: u64) -> Session {
        let id: [u8; 16] = rand::random();
        let id = b64().encode(id);
        Session { role, csrf: self.csrf_of(&id), id, expires: now + LIFETIME_SECS }
    }

    /// The cookie value of `s`: `role.expires.id.signature`.
    pub fn cookie(&self, s: &Session) -> String {
        let body = format!("{}.{}.{}", s.role.as_str(), s.expires, s.id);
        let sig = self.mac(&[b"session", body.as_bytes()]);
        format!("{body}.{}", b64().encode(sig))
    }

    /// The session a cookie value stands for, if its signature holds and it has not expired.
    pub fn check(&self, cookie: &str, now: u64) -> Option<Session> {
        let (body, sig) = cookie.rsplit_once('.')?;
        let sig = b64().decode(sig).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"session");
        mac.update(b"\0");
        mac.update(body.as_bytes());
        mac.update(b"\0");
        mac.verify_slice(&sig).ok()?;
        let mut parts = body.splitn(3, '.');
        let role = match parts.next()? {
            "read" => Role::Read,
            "operate" => Role::Operate,
            _ => return None,
        };
        let expires: u64 = parts.next()?.parse().ok()?;
        let id = parts.next()?.to_owned();
        (expires > now).then(|| Session { role, csrf: self.csrf_of(&id), id, expires })
    }

    /// The CSRF token of a session's forms.
    pub fn csrf(&self, s: &Session) -> String {
        s.csrf.clone()
    }

    fn csrf_of(&self, id: &str) -> String {
        b64().encode(self.mac(&[b"csrf", id.as_bytes()]))
    }

    /// Does `token` belong to session `s`? (Constant time.)
    pub fn csrf_ok(&self, s: &Session, token: &str) -> bool {
        let Ok(given) = b64().decode(token) else { return false };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"csrf");
        mac.update(b"\0");
        mac.update(s.id.as_bytes());
        mac.update(b"\0");
        mac.verify_slice(&given).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_csrf_tokens() {
        let signer = Signer::new("tok-a:read,tok-b");
        let s = signer.start(Role::Operate, 1000);
        let cookie = signer.cookie(&s);
        assert_eq!(signer.check(&cookie, 1001), Some(s.clone()));
        assert_eq!(signer.check(&cookie, 1000 + LIFETIME_SECS), None, "expired");
        assert_eq!(signer.check(&cookie.replacen("operate", "read", 1), 1001), None, "tampered");
        assert_eq!(Signer::new("other").check(&cookie, 1001), None, "another key");
        let csrf = signer.csrf(&s);
        assert!(signer.csrf_ok(&s, &csrf));
        assert!(!signer.csrf_ok(&signer.start(Role::Operate, 1000), &csrf), "another session's token");
        assert!(!signer.csrf_ok(&s, "") && !signer.csrf_ok(&s, "!!"));
    }
}
