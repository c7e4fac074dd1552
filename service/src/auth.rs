//! Who is calling: a bearer token, mapped to an account by a [`TokenVerifier`]. The default is
//! [`StaticTokens`], a file of tokens (or their SHA-256) and accounts; a provider plugs in its
//! own verifier (an identity provider, a database) behind the same trait.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::BoxFuture;

/// An account: what the quota is kept per. A name of 1 to 64 characters `A-Z a-z 0-9 _ - .`
/// (it shows in logs and admin commands).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Account(String);

impl Account {
    /// Checks and wraps an account name.
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && !name.starts_with('.');
        if ok { Ok(Account(name.to_string())) } else { Err(format!("{name:?} is not a valid account name")) }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maps a bearer token to an account, or rejects it.
pub trait TokenVerifier: Send + Sync + 'static {
    /// The account of `token`, or `None` when the token is not valid.
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<Account>>;
}

/// Tokens from a file: one `TOKEN ACCOUNT` per line, TOKEN being the token itself or
/// `sha256:` and the hex SHA-256 of it (so the file need not hold the tokens); blank lines and
/// `#` comments are skipped. Tokens are compared by their SHA-256.
pub struct StaticTokens {
    by_digest: HashMap<[u8; 32], Account>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl StaticTokens {
    /// Reads the token file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the tokens file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the token file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by_digest = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(token), Some(account), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("line {}: expected TOKEN ACCOUNT", n + 1));
            };
            let key = match token.strip_prefix("sha256:") {
                Some(hex) => license_backup::protocol::unhex(hex, 32, "token digest")
                    .map_err(|_| format!("line {}: sha256: needs 64 hex digits", n + 1))?
                    .try_into()
                    .expect("32 bytes"),
                None => digest(token),
            };
            let account = Account::new(account).map_err(|e| format!("line {}: {e}", n + 1))?;
            if by_digest.insert(key, account).is_some() {
                return Err(format!("line {}: a token listed twice", n + 1));
            }
        }
        if by_digest.is_empty() {
            return Err("no tokens".into());
        }
        Ok(StaticTokens { by_digest })
    }

    /// The `sha256:` form of a token, for the file.
    pub fn hashed(token: &str) -> String {
        format!("sha256:{}", license_backup::protocol::hex(&digest(token)))
    }
}

impl TokenVerifier for StaticTokens {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<Account>> {
        let found = self.by_digest.get(&digest(token)).cloned();
        Box::pin(async move { found })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_plain_and_hashed() {
        let file = format!("# provider tokens\nalpha-token acme\n{} globex\n\n", StaticTokens::hashed("beta-token"));
        let t = StaticTokens::parse(&file).unwrap();
        assert_eq!(t.verify("alpha-token").await.unwrap().as_str(), "acme");
        assert_eq!(t.verify("beta-token").await.unwrap().as_str(), "globex");
        assert!(t.verify("alpha-token ").await.is_none());
        assert!(t.verify("").await.is_none());
        for bad in ["x", "a b c", "a ../etc", "sha256:zz acme", "t a\nt b", ""] {
            assert!(StaticTokens::parse(bad).is_err(), "{bad:?}");
        }
    }
}
