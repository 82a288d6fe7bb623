//! Keeping secrets out of text shown to people: [`redact`] for free text (response bodies,
//! error messages), [`mask_url`] for connection URLs, [`bound_bytes`] for length limits.
//!
//! This module owns the patterns that recognise a secret in text we did not write ourselves — an
//! error body a target sent back, a transport error, a parse error quoting its input. It knows
//! no configured secret value (callers that know one replace it themselves, see `Secret`); it
//! recognises secrets by shape and by the name they are given. It is pure: no I/O, no state.
//!
//! The patterns err towards redacting: a word after `password:` in prose is lost, a token is
//! not. What stays readable is what an operator needs: status, error codes, field names.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a secret is replaced with.
const REDACTED: &str = "[redacted]";

/// What a URL password is replaced with by [`mask_url`].
const MASK: &str = "****";

/// Key fragments (lowercase, `_`/`-` removed) that mark the value of a JSON member or a
/// `key=value` pair as secret.
const SECRET_KEY_PARTS: &[&str] =
    &["token", "secret", "password", "passwd", "apikey", "accesskey", "privatekey", "signature", "credential", "session", "cookie", "authorization"];

/// `scheme://user:password@` — the password of a URL's userinfo. The password may hold `?`,
/// `#` and `@` (invalid but seen in hand-written configs); the match runs to the last `@`
/// before a `/`, whitespace, quote or comma, so nothing of the password is left behind.
static URL_USERINFO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?P<pre>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:"'<>,]*):(?P<pw>[^\s/"'<>,]+)@"#).expect("URL userinfo pattern"));

/// `Authorization: …` (and the other credential headers) as a header line: the whole rest of
/// the line is the value (`Bearer x`, `a=b; c=d`).
static HEADER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?P<name>proxy-authorization|authorization|set-cookie|cookie|x-api-key)(?P<sep>[ \t]*:[ \t]*)(?P<value>[^\r\n]*)")
        .expect("header line pattern")
});

/// A JSON (or Python-repr) member with a string value: `"key": "value"` / `'key': 'value'`.
/// A value cut off by a truncated body (no closing quote) runs to the end of the text.
static QUOTED_MEMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?s)(?P<key>"(?P<dk>[^"\\\r\n]+)"|'(?P<sk>[^'\\\r\n]+)')(?P<sep>\s*:\s*)(?:"(?P<dv>(?:[^"\\]|\\.)*)(?:"|\\?\z)|'(?P<sv>(?:[^'\\]|\\.)*)(?:'|\\?\z))"#,
    )
    .expect("quoted member pattern")
});

/// A JSON member inside a JSON string (`"{\"access_token\":\"…\"}"`, a request body a target
/// quotes back); values with escapes of their own are not expected of secrets.
static ESCAPED_MEMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?P<key>\\"(?P<name>[^"\\\r\n]+)\\")(?P<sep>\s*:\s*)\\"(?P<value>[^"\\]*)(?:\\"|\z)"#).expect("escaped member pattern")
});

/// `key=value` (query strings, logfmt) and `key: value`; the value is quoted or runs to the
/// next space, `&`, `,`, `;`, quote or angle bracket.
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?s)(?P<key>[A-Za-z0-9_.\-]+)(?P<sep>=|:[ \t]*)(?P<value>"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|[^\s&,;"'<>]+)"#)
        .expect("key-value pattern")
});

/// `Bearer <token>` / `Basic <base64>` (RFC 7235 token68), any case.
static AUTH_SCHEME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(?P<scheme>bearer|basic)(?P<ws>[ \t]+)(?P<token>[A-Za-z0-9\-._~+/]+=*)").expect("auth scheme pattern"));

/// A JWT (`eyJ…` header, then base64url parts separated by dots; JWE has five).
static JWT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*").expect("JWT pattern"));

/// A Standard Webhooks signing secret.
static WEBHOOK_SECRET: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"whsec_[A-Za-z0-9+/=_\-]+").expect("webhook secret pattern"));

/// Removes secrets from free text (an HTTP error body, an error message), replacing each with
/// `[redacted]`; borrows the input unchanged when nothing looks secret.
///
/// Recognised: `Bearer`/`Basic` credentials; the values of `Authorization`,
/// `Proxy-Authorization`, `Cookie`, `Set-Cookie` and `X-Api-Key` header lines; string values of
/// JSON members (also of JSON quoted inside a JSON string) and `key=value`/`key: value` pairs
/// whose key contains token, secret, password,
/// passwd, apikey, accesskey, privatekey, signature, credential, session, cookie or
/// authorization (any case, `_`/`-` ignored); JWTs; `whsec_…` secrets; and URL userinfo
/// passwords.
pub fn redact(text: &str) -> Cow<'_, str> {
    // Order matters: the wider forms go first (a header line takes its whole value, a JSON
    // member its whole string), so the narrower patterns after them find `[redacted]` and
    // leave it alone instead of redacting half a value.
    let text = replace(Cow::Borrowed(text), &URL_USERINFO, false, |c| {
        let pw = &c["pw"];
        (!is_redacted(pw)).then(|| format!("{}:{REDACTED}@", &c["pre"]))
    });
    let text = replace(text, &HEADER_LINE, false, |c| {
        let value = c["value"].trim();
        (!value.is_empty() && !is_redacted(value)).then(|| format!("{}{}{REDACTED}", &c["name"], &c["sep"]))
    });
    let text = replace(text, &QUOTED_MEMBER, false, |c| {
        let (key, value, quote) = match (c.name("dk"), c.name("sk"), c.name("dv")) {
            (Some(k), _, Some(v)) => (k.as_str(), v.as_str(), '"'),
            (Some(k), _, None) => (k.as_str(), &c["sv"], '\''),
            (None, Some(k), Some(v)) => (k.as_str(), v.as_str(), '"'),
            (None, _, _) => (&c["sk"], &c["sv"], '\''),
        };
        (is_secret_key(key) && !value.is_empty() && !is_redacted(value)).then(|| format!("{}{}{quote}{REDACTED}{quote}", &c["key"], &c["sep"]))
    });
    let text = replace(text, &ESCAPED_MEMBER, false, |c| {
        let value = &c["value"];
        (is_secret_key(&c["name"]) && !value.is_empty() && !is_redacted(value)).then(|| format!("{}{}\\\"{REDACTED}\\\"", &c["key"], &c["sep"]))
    });
    let text = replace(text, &KEY_VALUE, true, |c| {
        let value = c["value"].trim_matches(|ch| ch == '"' || ch == '\'');
        (is_secret_key(&c["key"]) && !value.is_empty() && !is_redacted(value)).then(|| format!("{}{}{REDACTED}", &c["key"], &c["sep"]))
    });
    let text = replace(text, &AUTH_SCHEME, false, |c| {
        (!is_word(c["token"].trim_end_matches('='))).then(|| format!("{}{}{REDACTED}", &c["scheme"], &c["ws"]))
    });
    let text = replace(text, &JWT, false, |_| Some(REDACTED.to_owned()));
    replace(text, &WEBHOOK_SECRET, false, |_| Some(REDACTED.to_owned()))
}

/// Replaces each match of `re` for which `with` returns `Some`; returns `text` itself (still
/// borrowed, if it was) when nothing was replaced, which `Regex::replace_all` cannot do for a
/// replacer that keeps some matches.
///
/// With `rescan_value`, a kept match is searched again from the end of its `sep` group: the
/// value of a harmless key (`detail: token=abc`) may itself hold a secret pair.
fn replace<'t>(text: Cow<'t, str>, re: &Regex, rescan_value: bool, mut with: impl FnMut(&Captures<'_>) -> Option<String>) -> Cow<'t, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut at = 0;
    while let Some(caps) = re.captures_at(&text, at) {
        let whole = caps.get(0).expect("group 0 always matches");
        match with(&caps) {
            Some(replacement) => {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
                out.push_str(&text[copied..whole.start()]);
                out.push_str(&replacement);
                copied = whole.end();
                at = whole.end();
            }
            None => {
                let sep_end = caps.name("sep").map(|m| m.end());
                at = match sep_end {
                    Some(end) if rescan_value => end,
                    _ => whole.end(),
                };
            }
        }
        // No pattern matches empty text; should one ever, this keeps the loop finite.
        if whole.is_empty() {
            at += text[at..].chars().next().map_or(1, char::len_utf8);
        }
        if at > text.len() {
            break;
        }
    }
    match out {
        None => text,
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// True when `key` names a secret (see [`SECRET_KEY_PARTS`]).
fn is_secret_key(key: &str) -> bool {
    let key: String = key.chars().filter(|&c| c != '_' && c != '-').map(|c| c.to_ascii_lowercase()).collect();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

/// True for a value already redacted (by this module or by a caller's `***`), so running
/// [`redact`] twice changes nothing.
fn is_redacted(value: &str) -> bool {
    value.starts_with(REDACTED) || value == "***" || value == MASK
}

/// True for an English-looking word (`token`, `Authentication`, `realm`): after `Bearer` or
/// `Basic` in prose such a word is not a credential. Real tokens and base64 credentials have
/// digits, symbols or inner capitals, or are longer than 20 characters.
fn is_word(token: &str) -> bool {
    let mut chars = token.chars();
    token.len() <= 20 && chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_lowercase())
}

/// A URL (or a comma-separated list of URLs, as for Redis Cluster seeds) fit to show a person:
/// the password in each URL's userinfo, and a `pass`/`password` query parameter (where
/// `redis+unix://` URLs carry it), become `****`; everything else is unchanged.
pub fn mask_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for (i, part) in url.split(',').enumerate() {
        if i > 0 {
            out.push(',');
        }
        mask_one_url(part, &mut out);
    }
    out
}

/// Appends `url` to `out` with its password masked (see [`mask_url`]).
fn mask_one_url(url: &str, out: &mut String) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        out.push_str(url);
        return;
    };
    // The authority runs to the first `/`; `?` and `#` are not treated as its end because a
    // hand-written password may contain them unencoded, and masking too much beats leaking.
    let rest = &url[scheme_end..];
    let authority_len = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_len);
    out.push_str(&url[..scheme_end]);
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.split_once(':') {
                Some((user, password)) if !password.is_empty() => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                _ => out.push_str(userinfo),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    mask_query_password(path, out);
}

/// Appends `path` (a URL's path, query and fragment) to `out` with the values of `pass` and
/// `password` query parameters masked.
fn mask_query_password(path: &str, out: &mut String) {
    let Some(q) = path.find('?') else {
        out.push_str(path);
        return;
    };
    let (before, query) = path.split_at(q + 1);
    out.push_str(before);
    let query_len = query.find('#').unwrap_or(query.len());
    let (query, fragment) = query.split_at(query_len);
    for (i, param) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((key, value)) if !value.is_empty() && (key.eq_ignore_ascii_case("pass") || key.eq_ignore_ascii_case("password")) => {
                out.push_str(key);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(param),
        }
    }
    out.push_str(fragment);
}

/// Cuts `text` to at most `max` bytes on a char boundary; a cut text ends with `…`, whose three
/// bytes count within `max` (below 3 bytes there is no room for it, and the cut is unmarked).
pub fn bound_bytes(text: &str, max: usize) -> String {
    const MARKER: &str = "…";
    if text.len() <= max {
        return text.to_owned();
    }
    let room = max.checked_sub(MARKER.len());
    let mut end = room.unwrap_or(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + MARKER.len());
    out.push_str(&text[..end]);
    if room.is_some() {
        out.push_str(MARKER);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `redact(input)` is `expected` and that redacting again changes nothing.
    #[track_caller]
    fn check(input: &str, expected: &str) {
        let once = redact(input);
        assert_eq!(once, expected, "input: {input}");
        assert!(matches!(redact(&once), Cow::Borrowed(_)), "not idempotent: {once}");
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for text in [
            r#"{"error":"invalid_envelope","field":"inputs"}"#,
            "HTTP 503: upstream busy",
            "",
            "token request failed: token endpoint answered HTTP 401: Unauthorized",
            "error sending request: client error (Connect): tcp connect error: Connection refused",
            r#"{"error":"invalid_token","error_description":"The Bearer token has expired"}"#,
            "WWW-Authenticate: Bearer realm=\"api\", error=\"invalid_token\"",
            "Basic authentication is not enabled",
            "see https://api.example.com:8443/v1/actions?page=2&limit=10 at 12:30:00",
            "missing field `expires_in` at line 1 column 20",
            r#"{"token_count":3,"password_policy":null}"#,
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn bearer_and_basic_credentials() {
        check("got Bearer abc.DEF-123_x~+/= here", "got Bearer [redacted] here");
        check("echo: bearer tok-1", "echo: bearer [redacted]");
        check("BASIC bXktY2xpZW50OnMzY3JldA==", "BASIC [redacted]");
        check("sent Basic YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo= twice", "sent Basic [redacted] twice");
        // A long all-lowercase opaque token is not mistaken for a word.
        check("Bearer abcdefghijklmnopqrstuvwxyz", "Bearer [redacted]");
    }

    #[test]
    fn credential_header_lines() {
        check("GET /x HTTP/1.1\r\nAuthorization: Bearer tok-1\r\nAccept: */*\r\n", "GET /x HTTP/1.1\r\nAuthorization: [redacted]\r\nAccept: */*\r\n");
        check(
            "proxy-authorization:Basic dTpw\ncookie: a=1; sid=xyz\nSet-Cookie: sid=abc; HttpOnly\nX-API-KEY: k-123",
            "proxy-authorization:[redacted]\ncookie: [redacted]\nSet-Cookie: [redacted]\nX-API-KEY: [redacted]",
        );
        check("Authorization:\nnext", "Authorization:\nnext");
    }

    #[test]
    fn credential_headers_as_json_members() {
        check(
            r#"{"headers":{"Authorization":"Bearer tok-1","Accept":"application/json","COOKIE": "sid=1"}}"#,
            r#"{"headers":{"Authorization":"[redacted]","Accept":"application/json","COOKIE": "[redacted]"}}"#,
        );
        check(
            r#"{"x-api-key":"k1","Set-Cookie":"a=b","proxy-authorization":"Basic dTpw"}"#,
            r#"{"x-api-key":"[redacted]","Set-Cookie":"[redacted]","proxy-authorization":"[redacted]"}"#,
        );
    }

    #[test]
    fn secret_json_members() {
        check(
            r#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#,
            r#"{"access_token":"[redacted]","token_type":"[redacted]","expires_in":3600}"#,
        );
        check(
            r#"{"client_id":"me","client_secret" : "s3\"cr\\et","scope":"a b"}"#,
            r#"{"client_id":"me","client_secret" : "[redacted]","scope":"a b"}"#,
        );
        check(
            r#"{"accessKeySecret":"x","refresh_token":"y","api-key":"z","PassWord":"p","sessionId":"s","signature":"g","privateKey":"k","my_credentials":"c","passwd":"w"}"#,
            r#"{"accessKeySecret":"[redacted]","refresh_token":"[redacted]","api-key":"[redacted]","PassWord":"[redacted]","sessionId":"[redacted]","signature":"[redacted]","privateKey":"[redacted]","my_credentials":"[redacted]","passwd":"[redacted]"}"#,
        );
        // Python repr, and a body cut in the middle of the secret.
        check("{'password': 'hunter2', 'user': 'bob'}", "{'password': '[redacted]', 'user': 'bob'}");
        check(r#"{"error":"x","access_token":"eyJhbGciOiJIUzI1"#, r#"{"error":"x","access_token":"[redacted]""#);
        // A JSON document quoted inside a JSON string.
        check(
            r#"{"request":"{\"access_token\":\"abc\",\"n\":1,\"scope\":\"a\"}"}"#,
            r#"{"request":"{\"access_token\":\"[redacted]\",\"n\":1,\"scope\":\"a\"}"}"#,
        );
        // Not string values: numbers, null and empty strings reveal nothing.
        check(r#"{"token":123,"secret":null,"password":""}"#, r#"{"token":123,"secret":null,"password":""}"#);
    }

    #[test]
    fn query_strings_and_logfmt() {
        check("GET /cb?access_token=abc&x=1#f", "GET /cb?access_token=[redacted]&x=1#f");
        check(
            "level=warn msg=\"auth failed\" client_secret=\"a b\" api_key=k1 user=bob",
            "level=warn msg=\"auth failed\" client_secret=[redacted] api_key=[redacted] user=bob",
        );
        check("password: hunter2, retry", "password: [redacted], retry");
        check(r#"{"detail":"bad request: token=abc"}"#, r#"{"detail":"bad request: token=[redacted]"}"#);
    }

    #[test]
    fn jwts_and_webhook_secrets() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl-_x";
        check(&format!("token {jwt} rejected"), "token [redacted] rejected");
        check(&format!(r#"{{"detail":"expired: {jwt}"}}"#), r#"{"detail":"expired: [redacted]"}"#);
        check("signing with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+/= failed", "signing with [redacted] failed");
    }

    #[test]
    fn url_userinfo_passwords() {
        check("redis://user:pw@host:6379/0", "redis://user:[redacted]@host:6379/0");
        check("connect to rediss://:p@ss?w#rd@h:6380 failed", "connect to rediss://:[redacted]@h:6380 failed");
        check(r#"{"url":"https://id:sec@auth.example.com/token"}"#, r#"{"url":"https://id:[redacted]@auth.example.com/token"}"#);
        check("redis://:a@h1:7000,redis://:b@h2:7001", "redis://:[redacted]@h1:7000,redis://:[redacted]@h2:7001");
        check("http://host:8080/path", "http://host:8080/path");
    }

    #[test]
    fn a_long_body_is_handled() {
        let filler = r#"{"error":"invalid_envelope","field":"inputs"},"#.repeat(4_000);
        let body = format!(r#"[{filler}{{"access_token":"leak-me"}}]"#);
        assert!(body.len() > 180_000);
        let out = redact(&body);
        assert!(!out.contains("leak-me"));
        assert!(out.ends_with(r#"{"access_token":"[redacted]"}]"#));
        assert_eq!(out.len(), body.len() - "leak-me".len() + REDACTED.len());
        assert!(matches!(redact(&filler), Cow::Borrowed(_)));
        // A huge unterminated string is scanned in linear time, not backtracked over.
        let open = format!(r#"{{"password":"{}"#, "x".repeat(200_000));
        assert_eq!(redact(&open), r#"{"password":"[redacted]""#);
    }

    #[test]
    fn secret_keys() {
        for key in [
            "access_token",
            "client_secret",
            "accessKeySecret",
            "refresh_token",
            "api-key",
            "x-api-key",
            "X-Api-Key",
            "private_key",
            "Set-Cookie",
            "authorization",
            "pass_wd",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["error", "field", "scope", "expires_in", "client_id", "key", "passage"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn masks_url_passwords() {
        assert_eq!(mask_url("redis://:pw@h:6379/0"), "redis://:****@h:6379/0");
        assert_eq!(mask_url("rediss://user:pw@h"), "rediss://user:****@h");
        assert_eq!(mask_url("redis://user@h:6379"), "redis://user@h:6379");
        assert_eq!(mask_url("redis://user:@h"), "redis://user:@h");
        assert_eq!(mask_url("redis://h:6379/2"), "redis://h:6379/2");
        assert_eq!(mask_url("redis://:p@ss:w?rd@h/0"), "redis://:****@h/0");
        assert_eq!(mask_url("127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(mask_url(""), "");
    }

    #[test]
    fn masks_url_lists_and_unix_paths() {
        assert_eq!(
            mask_url("redis://:a@h1:7000,redis://u:b@h2:7001, redis://h3:7002"),
            "redis://:****@h1:7000,redis://u:****@h2:7001, redis://h3:7002"
        );
        assert_eq!(mask_url("unix:///run/redis.sock"), "unix:///run/redis.sock");
        assert_eq!(mask_url("redis+unix:///run/redis@1.sock?db=2&pass=s3cret&user=u#x"), "redis+unix:///run/redis@1.sock?db=2&pass=****&user=u#x");
        assert_eq!(mask_url("unix:///tmp/r.sock?Password=x"), "unix:///tmp/r.sock?Password=****");
    }

    #[test]
    fn bounds_bytes_on_char_boundaries() {
        assert_eq!(bound_bytes("hello", 5), "hello");
        assert_eq!(bound_bytes("hello", 100), "hello");
        assert_eq!(bound_bytes("hello world", 8), "hello…");
        assert_eq!(bound_bytes("", 0), "");
        // "é" is 2 bytes, "€" 3, "🦀" 4: the cut never splits one.
        let s = "éé€🦀x";
        assert_eq!(s.len(), 12);
        assert_eq!(bound_bytes(s, 12), s);
        assert_eq!(bound_bytes(s, 11), "éé€…"); // 7 + 3 bytes
        assert_eq!(bound_bytes(s, 9), "éé…");
        assert_eq!(bound_bytes(s, 6), "é…");
        assert_eq!(bound_bytes(s, 4), "…");
        assert_eq!(bound_bytes(s, 3), "…");
        assert_eq!(bound_bytes(s, 2), "é");
        assert_eq!(bound_bytes(s, 1), "");
        for max in 0..20 {
            assert!(bound_bytes(s, max).len() <= max, "{max}");
        }
        let long = "日本語".repeat(1000);
        let cut = bound_bytes(&long, 100);
        assert!(cut.len() <= 100 && cut.ends_with('…'));
        assert_eq!(cut.len(), 99);
    }
}
