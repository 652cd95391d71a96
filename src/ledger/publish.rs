//! The second location (`[ledger] publish`): a folder or a URL that checkpoints and rollback
//! acknowledgements are written to once, beside the store, where a restored database cannot
//! take them back.

use crate::app::Annexa;
use crate::config::Publish;

/// Writes a note to the second location under `rel` (a checkpoint as `<date>/<size>-<root>`,
/// an acknowledgement under `acknowledgements/`), once: an existing copy must be identical.
pub async fn write(
    app: &Annexa,
    target: &Publish,
    rel: &str,
    note: &str,
) -> anyhow::Result<String> {
    use anyhow::Context;
    match target {
        Publish::Dir(dir) => {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().expect("a date folder"))
                .with_context(|| format!("cannot publish into {}", dir.display()))?;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(note.as_bytes())?;
                    f.sync_all()?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if std::fs::read_to_string(&path)? != note {
                        anyhow::bail!(
                            "{} already holds a different note: someone else signs into this folder, or history was rewritten",
                            path.display(),
                        );
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot publish to {}", path.display()));
                }
            }
            Ok(path.display().to_string())
        }
        Publish::Url(base) => {
            let url = format!("{base}/{rel}");
            // The outbound policy holds here too: no redirects, public addresses only.
            let client = crate::base::outbound::client(
                app.config.allow_insecure_urls,
                std::time::Duration::from_secs(30),
            );
            let response = client
                .put(&url)
                .header("content-type", "text/plain; charset=utf-8")
                .body(note.to_string())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot publish to {url}: {}", e.without_url()))?;
            if !response.status().is_success() {
                anyhow::bail!("publishing to {url} failed with HTTP {}", response.status());
            }
            Ok(url)
        }
    }
}
