//! `annexa keys generate | rotate | revoke ID | list | export [FILE]`.

use crate::app::Annexa;
use crate::cli::KeysAction;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;
use crate::db::KeyState;
use crate::ledger::keyring;

pub async fn keys(app: &Annexa, action: KeysAction, json: bool) -> Result<Exit, Failure> {
    let path = app.config.ledger.key_file.display();
    let text = match action {
        KeysAction::Generate => {
            let key = keyring::generate(app).await?;
            format!(
                "key {} is active: {path} (private, mode 0600), {path}.pub (the verifier)\n",
                hex::encode(key.key_id())
            )
        }
        KeysAction::Rotate => {
            let (old, new) = crate::ledger::checkpoint::rotate_key(app)
                .await
                .map_err(Failure::of_checkpoint)?;
            format!(
                "key {} is active ({path}); key {} is retired (its file moved to {path}.{}); a checkpoint signed by both is published\n",
                hex::encode(new.key_id()),
                hex::encode(old.key_id()),
                hex::encode(old.key_id())
            )
        }
        KeysAction::Revoke { id } => {
            let key = keyring::revoke(app, &id).await?;
            format!(
                "key {} is revoked since {}; it never signs again{}\n",
                key.id,
                key.revoked_at.map(annexa_reports::time).unwrap_or_default(),
                if app
                    .db
                    .keys()
                    .await?
                    .iter()
                    .any(|k| k.state == KeyState::Active)
                {
                    ""
                } else {
                    "; no key is active: run `annexa keys generate`"
                }
            )
        }
        KeysAction::List => {
            let keys = app.db.keys().await?;
            if json {
                let list: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id, "name": k.name, "state": k.state, "verifier": k.verifier,
                            "created_at": annexa_reports::time(k.created_at),
                            "retired_at": k.retired_at.map(annexa_reports::time),
                            "revoked_at": k.revoked_at.map(annexa_reports::time),
                        })
                    })
                    .collect();
                serde_json::to_string(&list)? + "\n"
            } else {
                keys.iter()
                    .map(|k| format!("{} {:<8} {}\n", k.id, k.state, keyring::verifier_line(k)))
                    .collect()
            }
        }
        KeysAction::Export { file } => {
            let text = keyring::verifier_file(app).await?;
            match file {
                Some(f) => {
                    std::fs::write(&f, &text)?;
                    format!("wrote {}\n", f.display())
                }
                None => text,
            }
        }
    };
    print(text.as_bytes())?;
    Ok(Exit::Ok)
}
