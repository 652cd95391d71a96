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
        key_id(&self.name, &self.key.verifying_key().to_bytes())
    }

    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            id: self.key_id(),
            key: self.key.verifying_key(),
        }
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

    /// Reads a private key text (`PRIVATE+KEY+<name>+<id>+<base64>`), checking its key id.
    pub fn from_private_text(text: &str) -> Result<NoteKey, String> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or("not a signed-note private key (it must start with PRIVATE+KEY+)")?;
        let (name, id, raw) = split_key(rest)?;
        let seed: [u8; 32] = raw.try_into().map_err(|_| "the key is not 32 bytes")?;
        let key = NoteKey {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        };
        if hex::encode(key.key_id()) != id {
            return Err(format!("the key id {id} does not match the key"));
        }
        Ok(key)
    }

    /// Reads the private key file at `path`.
    pub fn read(path: &Path) -> Result<NoteKey, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        NoteKey::from_private_text(&text)
    }

    /// Signs `text` (which ends with a newline) as a C2SP signed note.
    pub fn sign_note(&self, text: &str) -> String {
        sign_note(text, &[self])
    }

    /// This key's signature line over `text`.
    fn signature_line(&self, text: &str) -> String {
        use ed25519_dalek::Signer;
        let signature = self.key.sign(text.as_bytes());
        let mut raw = self.key_id().to_vec();
        raw.extend_from_slice(&signature.to_bytes());
        format!("\u{2014} {} {}\n", self.name, BASE64.encode(raw))
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

/// Signs `text` (which ends with a newline) as a C2SP signed note, by each key in turn.
pub fn sign_note(text: &str, keys: &[&NoteKey]) -> String {
    debug_assert!(text.ends_with('\n'));
    let mut note = format!("{text}\n");
    for key in keys {
        note.push_str(&key.signature_line(text));
    }
    note
}

/// `<name>+<hex id>+<base64(0x01 ‖ 32 bytes)>` → its parts, the 32 bytes without the
/// algorithm byte.
fn split_key(text: &str) -> Result<(&str, &str, Vec<u8>), String> {
    // Names never contain `+`; base64 may.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a key has the form <name>+<key id>+<base64 key>".into());
    };
    let raw = BASE64
        .decode(b64)
        .map_err(|e| format!("the key is not base64: {e}"))?;
    match raw.split_first() {
        Some((&ALG_ED25519, key)) if key.len() == 32 => Ok((name, id, key.to_vec())),
        _ => Err("only Ed25519 keys (algorithm 0x01, 32 bytes) are supported".into()),
    }
}

/// A public key that checks signed notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub id: [u8; 4],
    pub key: ed25519_dalek::VerifyingKey,
}

impl Verifier {
    /// Reads verifier text `<name>+<id>+<base64>`, checking the key id.
    pub fn parse(text: &str) -> Result<Verifier, String> {
        let (name, id, raw) = split_key(text.trim())?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| "the key is not 32 bytes")?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|e| format!("not an Ed25519 public key: {e}"))?;
        let expected = key_id(name, &bytes);
        if hex::encode(expected) != id {
            return Err(format!("the key id {id} does not match the key"));
        }
        Ok(Verifier {
            name: name.to_string(),
            id: expected,
            key,
        })
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A signed note, split: its text and its signature lines (key name, key id, signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    pub text: String,
    pub signatures: Vec<(String, [u8; 4], [u8; 64])>,
}

impl SignedNote {
    /// Splits a note at its last blank line; every line after it must be a signature line.
    pub fn parse(note: &str) -> Result<SignedNote, String> {
        let split = note
            .rfind("\n\n")
            .ok_or("not a signed note: no blank line before the signatures")?;
        let text = &note[..split + 1];
        let mut signatures = Vec::new();
        for line in note[split + 2..].lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| format!("not a signature line: `{line}`"))?;
            let (name, b64) = rest
                .rsplit_once(' ')
                .ok_or_else(|| format!("not a signature line: `{line}`"))?;
            let raw = BASE64
                .decode(b64)
                .map_err(|e| format!("a signature is not base64: {e}"))?;
            let (id, sig) = raw.split_at_checked(4).ok_or("a signature is too short")?;
            let sig: [u8; 64] = sig
                .try_into()
                .map_err(|_| "an Ed25519 signature is 64 bytes")?;
            signatures.push((name.to_string(), id.try_into().expect("4 bytes"), sig));
        }
        if signatures.is_empty() {
            return Err("the note carries no signature".into());
        }
        Ok(SignedNote {
            text: text.to_string(),
            signatures,
        })
    }

    /// The verifiers among `keys` whose signature on this note is valid (strict Ed25519).
    /// A signature line naming a known key id that does not verify is an error.
    pub fn verified_by<'k>(&self, keys: &'k [Verifier]) -> Result<Vec<&'k Verifier>, String> {
        let mut ok = Vec::new();
        for (name, id, sig) in &self.signatures {
            let Some(v) = keys.iter().find(|k| &k.id == id && &k.name == name) else {
                continue;
            };
            let sig = ed25519_dalek::Signature::from_bytes(sig);
            v.key
                .verify_strict(self.text.as_bytes(), &sig)
                .map_err(|_| format!("the signature by key {} ({name}) is invalid", v.id_hex()))?;
            ok.push(v);
        }
        Ok(ok)
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
        let read = NoteKey::read(&path).unwrap();
        assert_eq!(read.verifier_text(), vkey);
    }

    #[test]
    fn keys_whose_base64_holds_a_plus_sign_read_back() {
        let mut found = 0;
        while found < 3 {
            let key = NoteKey::generate("annexa/example").unwrap();
            let text = key.private_text();
            if text.rsplit('+').count() > 5 {
                found += 1;
                let read = NoteKey::from_private_text(&text).unwrap();
                assert_eq!(read.verifier_text(), key.verifier_text());
                assert!(Verifier::parse(&key.verifier_text()).is_ok());
            }
        }
    }

    #[test]
    fn a_signed_note_verifies_with_its_key_only_and_not_once_edited() {
        let key = NoteKey::generate("annexa/example").unwrap();
        let other = NoteKey::generate("annexa/example").unwrap();
        let note = key.sign_note("annexa/example\n5\nAAAA\n");
        assert!(note.starts_with("annexa/example\n5\nAAAA\n\n\u{2014} annexa/example "));
        let parsed = SignedNote::parse(&note).unwrap();
        assert_eq!(parsed.text, "annexa/example\n5\nAAAA\n");
        let verifier = Verifier::parse(&key.verifier_text()).unwrap();
        assert_eq!(verifier, key.verifier());
        assert_eq!(
            parsed
                .verified_by(std::slice::from_ref(&verifier))
                .unwrap()
                .len(),
            1
        );
        assert!(parsed.verified_by(&[other.verifier()]).unwrap().is_empty());
        let edited = SignedNote::parse(&note.replace("\n5\n", "\n6\n")).unwrap();
        assert!(edited.verified_by(&[verifier]).is_err());
        assert!(Verifier::parse("annexa/example+00000000+AQ==").is_err());
        assert!(SignedNote::parse("no signatures\n").is_err());
    }

    /// The C2SP signed-note specification's example key and note (from its test vectors).
    #[test]
    fn the_signed_note_specification_example_verifies() {
        let verifier =
            Verifier::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .unwrap();
        let note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let parsed = SignedNote::parse(note).unwrap();
        assert_eq!(parsed.verified_by(&[verifier]).unwrap().len(), 1);
    }
}
