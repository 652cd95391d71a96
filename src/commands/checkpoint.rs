//! `annexa checkpoint`: signs and publishes a checkpoint of the ledger.

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;

pub async fn checkpoint(
    app: &Annexa,
    acknowledge: Option<&str>,
    json: bool,
) -> Result<Exit, Failure> {
    if let Some(reason) = acknowledge {
        match crate::ledger::checkpoint::acknowledge_rollback(app, reason).await? {
            Some((db_size, published)) => eprintln!(
                "rollback acknowledged: the ledger continues from {db_size} leaves; the published history up to {published} leaves is set aside (audit event recorded)"
            ),
            None => eprintln!(
                "no rollback to acknowledge: the ledger extends every published checkpoint"
            ),
        }
    }
    let outcome = crate::ledger::checkpoint::create(app)
        .await
        .map_err(Failure::of_checkpoint)?;
    let c = &outcome.checkpoint;
    let text = if json {
        serde_json::to_string(&serde_json::json!({
            "tree_size": c.tree_size,
            "root_hash": c.root_hash,
            "key_id": c.key_id,
            "new": outcome.new,
            "object_key": c.object_key,
            "published": outcome.published,
            "note": c.note,
        }))? + "\n"
    } else {
        let mut t = if outcome.new {
            format!(
                "checkpoint of tree size {} signed by key {}, stored at {} in {}\n",
                c.tree_size,
                c.key_id,
                c.object_key,
                app.store_location()
            )
        } else {
            format!(
                "the ledger has not grown since checkpoint {} (tree size {})\n",
                c.object_key, c.tree_size
            )
        };
        if let Some(p) = &outcome.published {
            t.push_str(&format!("published to {p}\n"));
        }
        t.push('\n');
        t.push_str(&c.note);
        t
    };
    print(text.as_bytes())?;
    Ok(Exit::Ok)
}
