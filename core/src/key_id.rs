//! The 16-byte key ID that names a license, shown everywhere as a lowercase hyphenated UUID.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A license's key ID: 16 bytes, written as a lowercase hyphenated UUID
/// (`"0f8fad5b-d9cb-469f-a165-70867728950e"`) in every language and in every event.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 16]);

impl KeyId {
    /// Wraps 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        KeyId(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A fresh random key ID.
    pub fn random() -> Self {
        KeyId(crate::crypto::random_array())
    }

    /// Parses a key ID from a slice that must hold exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 16] =
            bytes.try_into().map_err(|_| Error::invalid(format!("a key ID has 16 bytes, not {}", bytes.len())))?;
        Ok(KeyId(arr))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl KeyId {
    /// Parses a key ID given as argument (or field) `path`: an `INVALID_ARGUMENT` that names it
    /// (`"license.key_id must be a key ID (a UUID string), not \"x\""`) when it is not one.
    pub fn parse_arg(text: &str, path: impl fmt::Display) -> Result<Self> {
        text.parse().map_err(|_| {
            let shown = if text.chars().count() <= 40 { format!("{text:?}") } else { "a longer string".into() };
            crate::interface::invalid(path, &crate::interface::Type::KeyId, shown)
        })
    }
}

impl FromStr for KeyId {
    type Err = Error;

    /// Parses the UUID form, with or without hyphens, in either case.
    fn from_str(s: &str) -> Result<Self> {
        let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
        let bad = || Error::invalid(format!("not a key ID (expected a UUID): {s:?}"));
        if hex.len() != 32 || s.len() > 36 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(KeyId(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trip() {
        let text = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let id: KeyId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(id.as_bytes()[0], 0x0f);
        let upper: KeyId = "0F8FAD5BD9CB469FA16570867728950E".parse().unwrap();
        assert_eq!(upper, id);
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "",
            "xyz",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5b-d9cb-469f-a165-70867728950eff",
            "0f8fad5b-d9cb-469f-a165-7086772895zz",
            "é8fad5b-d9cb-469f-a165-70867728950e",
        ] {
            let err = bad.parse::<KeyId>().unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::InvalidArgument, "{bad}");
        }
    }
}
