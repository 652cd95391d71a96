//! Who this process is, in leases and run rows: `host/pid/tag`. A holder on this host whose
//! process is gone holds nothing: its leases are free and its runs are swept at once, instead
//! of after a lease time.

use std::sync::OnceLock;

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// This process, the same all its life.
pub fn this_process() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let tag = uuid::Uuid::now_v7().simple().to_string();
        format!("{}/{}/{}", hostname(), std::process::id(), &tag[24..])
    })
}

/// Whether `holder` names a process on this host that no longer runs. A holder of another
/// host, or one this process cannot read, is not known to be gone.
pub fn is_gone(holder: &str) -> bool {
    let mut parts = holder.split('/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    if holder == this_process() || host != hostname() {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie (killed, not yet reaped) runs no more either: `pid (name) Z …`.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_gone_only_when_its_process_on_this_host_is() {
        assert!(!is_gone(this_process()));
        let host = hostname();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(is_gone(&format!("{host}/{pid}/abc")));
        assert!(!is_gone(&format!("{host}/{}/abc", std::process::id())));
        assert!(!is_gone(&format!("another-host/{pid}/abc")));
        assert!(!is_gone("garbage"));
    }
}
