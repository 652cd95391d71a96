//! Names relative to the configuration: what people read (alerts, gap subjects) never shows
//! the host's absolute paths, so a gap keeps its id when the folder moves.

use std::path::Path;

/// `text` with every mention of `dir` (absolute) made relative to it: `/srv/annexa/backups`
/// under `/srv/annexa` reads `backups`, and `/srv/annexa` itself reads `.`.
pub fn relative_to(text: &str, dir: &Path) -> String {
    let dir = dir.to_string_lossy();
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() || !text.contains(dir) {
        return text.to_string();
    }
    text.replace(&format!("{dir}/"), "").replace(dir, ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_config_dir_read_relative() {
        let dir = Path::new("/srv/annexa");
        assert_eq!(
            relative_to("no backup in /srv/annexa/backups", dir),
            "no backup in backups"
        );
        assert_eq!(relative_to("/srv/annexa", dir), ".");
        assert_eq!(relative_to("/srv/other/x", dir), "/srv/other/x");
    }
}
