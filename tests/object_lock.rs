//! S3 Object Lock (issue 9), against moto's S3 server: the one local store that enforces it.
//! With `store.object_lock_mode` set, every object annexa writes carries that retention, and
//! the store refuses to delete a locked version; a bucket without Object Lock is refused.

mod common;

use std::process::{Child, Command, Stdio};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use common::{Backend, World};

/// moto's server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = common::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (pip install 'moto[server]'; ./scripts/test installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed().as_secs() < 30,
                "moto_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Moto { child, endpoint }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                common::ACCESS_KEY,
                common::SECRET_KEY,
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONFIG: &str = r#"
[organization]
name = "Example Ltd"

[[collector]]
name = "procedures"
kind = "policy-document"
schedule = "0 3 * * *"
paths = ["procedures"]
"#;

fn world(moto: &Moto, bucket: &str) -> World {
    let mut w = World::with_backend(Backend::Local);
    w.config(CONFIG);
    w.write(
        "procedures/incident.md",
        &common::procedure("PROC-1", &common::reviewed_days_ago(10)),
    );
    for (k, v) in [
        ("ANNEXA_STORE__KIND", "s3"),
        ("ANNEXA_STORE__ENDPOINT", moto.endpoint.as_str()),
        ("ANNEXA_STORE__BUCKET", bucket),
        ("ANNEXA_STORE__OBJECT_LOCK_MODE", "COMPLIANCE"),
        ("ANNEXA_STORE__OBJECT_LOCK_DAYS", "30"),
    ] {
        w.env.push((k.to_string(), v.to_string()));
    }
    w
}

#[tokio::test]
async fn every_object_is_written_with_its_retention_and_cannot_be_deleted() {
    let moto = Moto::start();
    let s3 = moto.client();
    s3.create_bucket()
        .bucket("locked")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let w = world(&moto, "locked");
    w.annexa(&["collect", "--all"]).expect(0);
    w.annexa(&["checkpoint"]).expect(0);
    w.annexa(&["verify"]).expect(0);

    let listed = s3.list_objects_v2().bucket("locked").send().await.unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert!(
        keys.iter().any(|k| k.starts_with("objects/sha256/")),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("runs/")), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.starts_with("ledger/checkpoints/")),
        "{keys:?}"
    );
    let soon = chrono::Utc::now() + chrono::Duration::days(29);
    for key in &keys {
        let head = s3
            .head_object()
            .bucket("locked")
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.object_lock_mode().map(|m| m.as_str()),
            Some("COMPLIANCE"),
            "{key}"
        );
        let until = head
            .object_lock_retain_until_date()
            .expect("a retention date");
        assert!(
            until.secs() > soon.timestamp(),
            "{key} retained until {until}"
        );
        // The locked version cannot be deleted.
        let deleted = s3
            .delete_object()
            .bucket("locked")
            .key(key)
            .set_version_id(head.version_id().map(str::to_string))
            .send()
            .await;
        assert!(deleted.is_err(), "{key}: a locked version was deleted");
    }
    w.annexa(&["verify"]).expect(0);
}

#[tokio::test]
async fn a_bucket_without_object_lock_is_refused_when_it_is_configured() {
    let moto = Moto::start();
    moto.client()
        .create_bucket()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    let w = world(&moto, "plain");
    let out = w.annexa(&["collect", "--all"]).expect(1);
    assert!(
        out.stderr.contains("does not have Object Lock enabled"),
        "{}",
        out.stderr
    );
}
