//! Room passwords: argon2id hashes in memory, verified off the async threads (argon2 takes tens
//! of milliseconds by design).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Longest password accepted (characters).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The argon2id PHC string for `password`, or `None` for an empty one (no password).
pub async fn hash(password: String) -> Option<String> {
    if password.is_empty() {
        return None;
    }
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        // The OS random source failing is not something a conference server can work around.
        getrandom::fill(&mut salt).expect("the operating system's random source failed");
        let salt = SaltString::encode_b64(&salt).ok()?;
        Argon2::default().hash_password(password.as_bytes(), &salt).ok().map(|h| h.to_string())
    })
    .await
    .ok()
    .flatten()
}

/// Whether `password` matches `phc` (constant time inside argon2's comparison).
pub async fn verify(phc: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A key for per-address rate limits that is not the address itself.
pub fn address_key(addr: std::net::IpAddr) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    let mut h = SEED.get_or_init(Default::default).build_hasher();
    std::hash::Hash::hash(&addr, &mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_never_contain_the_password() {
        let phc = hash("geheim".into()).await.expect("a hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("geheim"));
        assert!(verify(phc.clone(), "geheim".into()).await);
        assert!(!verify(phc, "Geheim".into()).await);
        assert!(hash(String::new()).await.is_none());
    }
}
