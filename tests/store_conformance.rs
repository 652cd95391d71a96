//! One conformance suite for the evidence store, run on every backend: the local folder and an
//! S3-compatible server (s3s-fs, started here).

mod common;

use std::path::Path;

use annexa::base::Secret;
use annexa::store::{EvidenceStore, StoreError, object_key};
use annexa::store::{S3Config, StoreConfig};
use annexa_collectors::Body;
use common::S3Server;
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

fn s3_config(server: &S3Server) -> StoreConfig {
    s3_config_with_secret(server, common::SECRET_KEY)
}

fn s3_config_with_secret(server: &S3Server, secret: &str) -> StoreConfig {
    StoreConfig::S3(S3Config {
        static_credentials: Some((common::ACCESS_KEY.into(), Secret::new(secret.into()))),
        endpoint: Some(server.endpoint.clone()),
        region: "us-east-1".into(),
        bucket: server.bucket.clone(),
        prefix: "tenant-a".into(),
        path_style: true,
        multipart_threshold: 6 * MIB,
        part_size: 5 * MIB,
        retry_attempts: 5,
        object_lock: None,
    })
}

/// Runs `check` against a fresh store of every backend.
async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(EvidenceStore, std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let fs = EvidenceStore::open(&StoreConfig::Fs {
        path: dir.path().join("store"),
    })
    .await
    .unwrap();
    check(fs, dir.path().to_path_buf()).await;

    let server = S3Server::start();
    let s3 = EvidenceStore::open(&s3_config(&server)).await.unwrap();
    check(s3, dir.path().to_path_buf()).await;
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn big_file(dir: &Path, size: u64) -> (std::path::PathBuf, String) {
    let path = dir.join(format!("big-{size}"));
    let bytes: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    (path, sha(&bytes))
}

#[tokio::test]
async fn objects_are_content_addressed_and_written_once() {
    on_every_backend(|store, _dir| async move {
        let a = store
            .put_object(Body::Bytes(b"evidence".to_vec()))
            .await
            .unwrap();
        assert_eq!(a.sha256, sha(b"evidence"));
        assert_eq!(a.key, object_key(&a.sha256));
        assert_eq!(
            a.key,
            format!("objects/sha256/{}/{}", &a.sha256[..2], a.sha256)
        );
        assert_eq!(a.size, 8);
        // The same bytes again: the same object, no error.
        assert_eq!(
            store
                .put_object(Body::Bytes(b"evidence".to_vec()))
                .await
                .unwrap(),
            a
        );
        assert_eq!(store.read(&a.key).await.unwrap(), b"evidence");
        assert_eq!(store.hash(&a.key).await.unwrap(), (a.sha256.clone(), 8));
        assert_eq!(store.list("objects").await.unwrap(), vec![a.key.clone()]);
    })
    .await;
}

#[tokio::test]
async fn large_files_stream_through_and_keep_their_whole_file_hash() {
    on_every_backend(|store, dir| async move {
        // Above the S3 multipart threshold (6 MiB, parts of 5 MiB): three parts.
        let (path, expected) = big_file(&dir, 13 * MIB + 17);
        let o = store.put_object(Body::File(path.clone())).await.unwrap();
        assert_eq!(o.sha256, expected);
        assert_eq!(o.size, 13 * MIB + 17);
        assert_eq!(store.hash(&o.key).await.unwrap(), (expected, 13 * MIB + 17));
        // Again: already there.
        assert_eq!(store.put_object(Body::File(path)).await.unwrap().key, o.key);
    })
    .await;
}

#[tokio::test]
async fn named_documents_are_write_once() {
    on_every_backend(|store, _dir| async move {
        let key = "runs/c/2026/11/22/r.json";
        store.put_named(key, b"{\"a\":1}").await.unwrap();
        // Same bytes: fine. Other bytes: refused, and the first stays.
        store.put_named(key, b"{\"a\":1}").await.unwrap();
        match store.put_named(key, b"{\"a\":2}").await {
            Err(StoreError::Conflict { key: k }) => assert_eq!(k, key),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(store.read(key).await.unwrap(), b"{\"a\":1}");
        assert_eq!(store.list("runs").await.unwrap(), vec![key.to_string()]);
    })
    .await;
}

#[tokio::test]
async fn missing_objects_and_bad_keys_are_named() {
    on_every_backend(|store, _dir| async move {
        let key = object_key(&"0".repeat(64));
        assert!(matches!(
            store.read(&key).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            store.hash(&key).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(store.put_named("../escape", b"x").await.is_err());
        assert!(store.put_named("/abs", b"x").await.is_err());
        assert!(store.list("nothing-here").await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn s3_down_or_wrong_credentials_or_no_bucket_are_told_apart_without_secrets() {
    let server = S3Server::start();
    let StoreConfig::S3(good) = s3_config(&server) else {
        unreachable!()
    };

    let down = S3Config {
        endpoint: Some(format!("http://127.0.0.1:{}", common::free_port())),
        ..good.clone()
    };
    let err = EvidenceStore::open(&StoreConfig::S3(down.clone()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(down.endpoint.as_deref().unwrap())
            && text.contains("check that the server is running"),
        "{text}"
    );

    let no_bucket = S3Config {
        bucket: "no-such-bucket".into(),
        ..good.clone()
    };
    let err = EvidenceStore::open(&StoreConfig::S3(no_bucket))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::NoSuchBucket { .. }), "{err:?}");

    let wrong = s3_config_with_secret(&server, "not-the-secret");
    let err = EvidenceStore::open(&wrong).await.err().unwrap();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("AWS_SECRET_ACCESS_KEY") && !text.contains("not-the-secret"),
        "{text}"
    );
    let _ = good;
}
