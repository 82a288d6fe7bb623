//! Minting the HS256 JSON Web Tokens the CXone token endpoint issues: `base64url(header)`,
//! `base64url(claims)` and an HMAC-SHA256 signature, each without padding. The key is random per
//! simulator instance; clients read the claims (e.g. `tenantId`) but do not verify the signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// The JOSE header of every token.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Claims of an access token.
#[derive(Debug, Serialize)]
pub(crate) struct Claims<'a> {
    /// Issuer: the simulator's base URL.
    pub iss: &'a str,
    /// Subject: the API user (or client) the token was issued to.
    pub sub: &'a str,
    /// Audience.
    pub aud: &'static str,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Not before, unix seconds.
    pub nbf: u64,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Unique token id, so that two tokens issued in the same second differ.
    pub jti: &'a str,
    /// The tenant, as CXone puts it in its tokens.
    #[serde(rename = "tenantId")]
    pub tenant_id: &'a str,
    /// Kind of identity behind the token.
    #[serde(rename = "tokenType")]
    pub token_type: &'static str,
}

/// Signs tokens with a per-instance random key.
pub(crate) struct JwtSigner {
    mac: Hmac<Sha256>,
}

impl JwtSigner {
    /// A signer with a fresh random key.
    pub fn new() -> JwtSigner {
        let key: [u8; 32] = rand::random();
        JwtSigner { mac: Hmac::new_from_slice(&key).expect("HMAC takes any key length") }
    }

    /// The compact serialization of a token carrying `claims`.
    pub fn mint(&self, claims: &Claims<'_>) -> String {
        let claims = serde_json::to_vec(claims).expect("claims always serialize");
        let mut token = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(claims));
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_unpadded_segments_with_the_claims() {
        let signer = JwtSigner::new();
        let claims = Claims { iss: "http://x", sub: "u", aud: "a", iat: 1, nbf: 1, exp: 2, jti: "j", tenant_id: "t-1", token_type: "user" };
        let token = signer.mint(&claims);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!token.contains('='));
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[0]).unwrap(), HEADER.as_bytes());
        let payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!((payload["tenantId"].as_str(), payload["exp"].as_u64()), (Some("t-1"), Some(2)));
        let mut mac = signer.mac.clone();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    }
}
