//! The store contract, on a local directory and on the real HDFS of the local
//! stack: a temp file renamed over an existing file replaces it, listings show
//! what is there, and reads return exactly what was written.

use batch_store::{join, Store};
use bytes::Bytes;

fn unique_dir(prefix: &str) -> String {
    format!("/{}", local_stack::unique_name(prefix))
}

async fn rename_replaces_an_existing_file(store: &Store) {
    let dir = unique_dir("store-test");
    let target = join(&dir, "x");
    let tmp = join(&dir, "x.tmp");

    store
        .write_new(&target, Bytes::from_static(b"old content"))
        .await
        .expect("write x");
    store
        .write_new(&tmp, Bytes::from_static(b"new content"))
        .await
        .expect("write x.tmp");
    assert_eq!(
        store.list(&dir).await.unwrap(),
        vec!["x".to_string(), "x.tmp".to_string()]
    );

    store
        .rename_over(&tmp, &target)
        .await
        .expect("rename over existing x");
    assert_eq!(store.list(&dir).await.unwrap(), vec!["x".to_string()]);
    assert_eq!(
        store.get(&target).await.unwrap(),
        Bytes::from_static(b"new content")
    );

    let missing = store.get(&join(&dir, "nothing")).await.unwrap_err();
    assert!(missing.is_not_found(), "unexpected error: {missing}");
    assert!(store
        .list(&join(&dir, "no-such-dir"))
        .await
        .unwrap()
        .is_empty());
}

async fn put_atomic_leaves_no_temp_file(store: &Store) {
    let dir = unique_dir("put-test");
    let target = join(&dir, "batch.parquet");
    let payload: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
    store
        .put_atomic(&target, Bytes::from(payload.clone()))
        .await
        .expect("first put");
    store
        .put_atomic(&target, Bytes::from(payload.clone()))
        .await
        .expect("put over an existing file");
    assert_eq!(
        store.list(&dir).await.unwrap(),
        vec!["batch.parquet".to_string()]
    );
    assert_eq!(store.get(&target).await.unwrap(), Bytes::from(payload));
    assert!(store.delete(&target).await.unwrap());
    assert!(!store.delete(&target).await.unwrap());
}

#[tokio::test]
async fn hdfs_rename_replaces_an_existing_file() {
    let store = Store::open(&local_stack::hdfs_url()).expect("open HDFS");
    rename_replaces_an_existing_file(&store).await;
}

#[tokio::test]
async fn hdfs_put_atomic_leaves_no_temp_file() {
    let store = Store::open(&local_stack::hdfs_url()).expect("open HDFS");
    put_atomic_leaves_no_temp_file(&store).await;
}

#[tokio::test]
async fn local_rename_replaces_an_existing_file() {
    let root = tempfile::tempdir().unwrap();
    rename_replaces_an_existing_file(&Store::local(root.path())).await;
}

#[tokio::test]
async fn local_put_atomic_leaves_no_temp_file() {
    let root = tempfile::tempdir().unwrap();
    put_atomic_leaves_no_temp_file(&Store::local(root.path())).await;
}
