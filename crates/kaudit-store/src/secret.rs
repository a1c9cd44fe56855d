//! Hashes of intake keys and API tokens, compared in constant time.

use sha2::{Digest, Sha256};

/// SHA-256 of a secret (intake key or API token). Only the hash is stored; a lookup finds
/// the row by hash and then compares the full hash in constant time with [`KeyHash::ct_eq`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// The hash of a secret as presented by a client.
    pub fn of_secret(secret: &str) -> KeyHash {
        KeyHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// Compares two hashes without an early exit, so the time taken does not tell how many
    /// leading bytes matched.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        let mut diff = 0u8;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            diff |= std::hint::black_box(a ^ b);
        }
        std::hint::black_box(diff) == 0
    }
}

impl std::fmt::Debug for KeyHash {
    /// Shows only a short prefix: hashes are not secret, but logs need not carry them whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyHash({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}
