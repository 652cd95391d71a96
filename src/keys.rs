//! Ed25519 signing keys in the C2SP signed-note text formats:
//! - private: `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ 32-byte seed)>`;
//! - verifier (public): `<name>+<key id>+<base64(0x01 ‖ 32-byte public key)>`;
//!
//! where the key id is the first four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key), in hex.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

/// The signature algorithm byte for Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

/// A signing key and its name.
pub struct NoteKey {
    pub name: String,
    pub key: SigningKey,
}

impl NoteKey {
    /// A new random key.
    pub fn generate(name: &str) -> std::io::Result<NoteKey> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(std::io::Error::other)?;
        Ok(NoteKey {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The key id: the first four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
    pub fn key_id(&self) -> [u8; 4] {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update(b"\n");
        h.update([ALG_ED25519]);
        h.update(self.key.verifying_key().to_bytes());
        let digest = h.finalize();
        [digest[0], digest[1], digest[2], digest[3]]
    }

    fn encode(&self, bytes: &[u8; 32]) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(bytes);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            BASE64.encode(raw)
        )
    }

    /// The private key text.
    pub fn private_text(&self) -> String {
        format!("PRIVATE+KEY+{}", self.encode(&self.key.to_bytes()))
    }

    /// The verifier key text, for auditors.
    pub fn verifier_text(&self) -> String {
        self.encode(&self.key.verifying_key().to_bytes())
    }

    /// Writes `<path>` (private, mode 0600, never overwritten) and `<path>.pub` (verifier).
    pub fn write_new(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        writeln!(file, "{}", self.private_text())?;
        file.sync_all()?;
        let mut public = path.as_os_str().to_owned();
        public.push(".pub");
        std::fs::write(public, format!("{}\n", self.verifier_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_texts_have_the_signed_note_shape_and_the_private_file_is_0600() {
        let key = NoteKey::generate("annexa/example").unwrap();
        let vkey = key.verifier_text();
        let parts: Vec<&str> = vkey.splitn(3, '+').collect();
        assert_eq!(parts[0], "annexa/example");
        assert_eq!(parts[1].len(), 8);
        let raw = BASE64.decode(parts[2]).unwrap();
        assert_eq!(raw.len(), 33);
        assert_eq!(raw[0], ALG_ED25519);
        assert!(
            key.private_text()
                .starts_with("PRIVATE+KEY+annexa/example+")
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/annexa.key");
        key.write_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            key.write_new(&path).is_err(),
            "an existing key is never overwritten"
        );
    }
}
