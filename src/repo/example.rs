//! The public example repository (`secrets.example`): its demo identity is published with
//! it, so its fingerprint keys are public. An environment that uses one of them (a
//! repository copied from the example) gets Swarm names that clash with every other copy,
//! and fingerprints on the Swarm that anyone can test guesses of values against. `check`
//! and `init` warn about it.
//!
//! The example's key files are built in; they are compared as files, and decrypted (with
//! the demo identity, or the caller's) only in memory. No key is ever shown.

use crate::crypto::{self, Identities, Plaintext};

/// The example's demo identity (public demo material).
const DEMO_IDENTITY: &[u8] = include_bytes!("../../secrets.example/demo-identity.txt");

/// The example's fingerprint key files.
const EXAMPLE_KEYS: [&[u8]; 2] = [
    include_bytes!("../../secrets.example/.swarmseal/fingerprint/staging.age"),
    include_bytes!("../../secrets.example/.swarmseal/fingerprint/production.age"),
];

/// True when `key_file` (an environment's fingerprint key file, as read) holds one of the
/// example's fingerprint keys: the very file, or a re-encryption of the same key that the
/// demo identity or `ids` can read.
pub fn is_example_key(key_file: &[u8], ids: Option<&Identities>) -> bool {
    if EXAMPLE_KEYS.contains(&key_file) {
        return true;
    }
    let Ok(demo) = Identities::from_text(DEMO_IDENTITY, "secrets.example/demo-identity.txt") else {
        return false;
    };
    let open = |bytes: &[u8], ids: &Identities| -> Option<Plaintext> {
        crypto::decrypt(bytes, ids)
            .ok()
            .map(|d| d.value)
            .filter(|v| v.len() == crypto::FINGERPRINT_KEY_LEN)
    };
    let Some(key) = open(key_file, &demo).or_else(|| ids.and_then(|ids| open(key_file, ids)))
    else {
        return false;
    };
    EXAMPLE_KEYS
        .iter()
        .filter_map(|k| open(k, &demo))
        .any(|example| example[..] == key[..])
}

/// The warning about environment `env` using an example key: message and hint.
pub fn warning(env: &str) -> (String, String) {
    (
        format!(
            "the fingerprint key of {env} is one of the public example repository's (secrets.example): its Swarm names clash with every other copy of the example, and anyone can test guesses of its values against the fingerprints on the Swarm"
        ),
        format!(
            "give {env} a new fingerprint key: remove .swarmseal/fingerprint/{env}.age and run `swarmseal -e {env} rekey`, which creates a new one; commit it (the next apply gives every secret of {env} a new Swarm name)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_keys_are_recognised_and_a_new_key_is_not() {
        for key in EXAMPLE_KEYS {
            assert!(is_example_key(key, None));
        }
        // The same key re-encrypted (as `rekey` does) is still the example's.
        let demo = Identities::from_text(DEMO_IDENTITY, "demo").unwrap();
        let value = crypto::decrypt(EXAMPLE_KEYS[0], &demo).unwrap().value;
        let (_, public) = crypto::generate_identity();
        let scope = crypto::Scope::fingerprint_key("staging");
        let demo_public = demo.public_keys()[0].clone();
        let again = crypto::encrypt(&value, &[demo_public, public], &scope).unwrap();
        assert!(is_example_key(&again, None));
        // A new key is not.
        let fresh = crypto::new_fingerprint_key();
        let other = crypto::encrypt(&fresh, &[demo.public_keys()[0].clone()], &scope).unwrap();
        assert!(!is_example_key(&other, None));
        // Nor is a file nobody here can read.
        let (_, stranger) = crypto::generate_identity();
        let unreadable = crypto::encrypt(&value, &[stranger], &scope).unwrap();
        assert!(!is_example_key(&unreadable, None));
        // ... unless the caller's identity reads it.
        let (text, mine) = crypto::generate_identity();
        let ids = Identities::from_text(text.as_bytes(), "mine").unwrap();
        let readable = crypto::encrypt(&value, &[mine], &scope).unwrap();
        assert!(is_example_key(&readable, Some(&ids)));
        let (message, hint) = warning("staging");
        assert!(message.contains("staging") && hint.contains("swarmseal -e staging rekey"));
    }
}
