//! Who may call what: API tokens with roles (`CXRELAY_API_TOKENS` = `token:role,token:role`),
//! compared in constant time, never logged.

use cxrelay_core::Secret;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Create runs.
    Ingest,
    /// Read runs, items, workers, webhooks.
    Read,
    /// Replay, pause, resume, cancel, purge; implies read.
    Operate,
}

impl Role {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "operate" => Some(Role::Operate),
            _ => None,
        }
    }

    /// Does a token of this role allow an operation that needs `needed`?
    pub fn allows(self, needed: Role) -> bool {
        self == needed || (self == Role::Operate && needed == Role::Read)
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Operate => "operate",
        }
    }
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens(Vec<(Secret, Role)>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    /// Parses `token:role,token:role` (a token without a role is `operate`); the error names the
    /// entry by position, never by its token.
    pub fn parse(spec: &Secret) -> Result<Self, String> {
        let mut out = Vec::new();
        for (n, entry) in spec.expose().split(',').map(str::trim).enumerate().filter(|(_, e)| !e.is_empty()) {
            let (token, role) = match entry.rsplit_once(':') {
                Some((t, r)) => (
                    t,
                    Role::parse(r.trim())
                        // The text after the last ':' is not echoed: it may be part of the token.
                        .ok_or_else(|| format!("API token #{}: unknown role after its last ':'; expected ingest, read or operate", n + 1))?,
                ),
                None => (entry, Role::Operate),
            };
            if token.len() < 8 {
                return Err(format!("API token #{}: shorter than 8 characters", n + 1));
            }
            out.push((Secret::new(token), role));
        }
        Ok(Tokens(out))
    }

    /// The role of `presented`, if it is a configured token (every token is compared, in
    /// constant time, so the answer's timing tells nothing about which one matched or how much).
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let mut found = None;
        for (token, role) in &self.0 {
            let same: bool = token.expose().as_bytes().ct_eq(presented.as_bytes()).into();
            if same && found.is_none() {
                found = Some(*role);
            }
        }
        found
    }

    /// True when no token is configured (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_roles() {
        let t = Tokens::parse(&Secret::new("reader-123:read, op-token-9 ,ingest-77x:ingest")).unwrap();
        assert_eq!(t.role_of("reader-123"), Some(Role::Read));
        assert_eq!(t.role_of("op-token-9"), Some(Role::Operate));
        assert_eq!(t.role_of("ingest-77x"), Some(Role::Ingest));
        assert_eq!(t.role_of("reader-12"), None);
        assert!(Role::Operate.allows(Role::Read) && !Role::Read.allows(Role::Operate) && !Role::Ingest.allows(Role::Read));
        let e = Tokens::parse(&Secret::new("abcdefgh:admin")).unwrap_err();
        assert!(e.contains("#1: unknown role") && !e.contains("abcdefgh") && !e.contains("admin"), "{e}");
        assert!(Tokens::parse(&Secret::new("short")).unwrap_err().contains("#1"));
        assert!(format!("{t:?}").contains("3 configured") && !format!("{t:?}").contains("reader"));
    }
}
