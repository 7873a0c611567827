//! Conformance checks every [`Backend`] must pass, public so other crates can run them against
//! their own backends (or wrappers) from their tests.
//!
//! The checks panic with a descriptive message on the first violation.

use std::sync::Arc;

use crate::{Backend, Entry, TxOp};

fn entry(key: &str, value: impl Into<Vec<u8>>) -> Entry {
    Entry {
        key: key.to_owned(),
        value: value.into(),
    }
}

async fn put(backend: &dyn Backend, key: &str, value: impl Into<Vec<u8>>) {
    if let Err(e) = backend.put(entry(key, value)).await {
        panic!("put {key:?} failed: {e}");
    }
}

async fn get(backend: &dyn Backend, key: &str) -> Option<Vec<u8>> {
    match backend.get(key).await {
        Ok(value) => value,
        Err(e) => panic!("get {key:?} failed: {e}"),
    }
}

async fn list(backend: &dyn Backend, prefix: &str) -> Vec<String> {
    match backend.list(prefix).await {
        Ok(children) => children,
        Err(e) => panic!("list {prefix:?} failed: {e}"),
    }
}

async fn list_page(backend: &dyn Backend, prefix: &str, after: &str, limit: usize) -> Vec<String> {
    match backend.list_page(prefix, after, limit).await {
        Ok(children) => children,
        Err(e) => panic!("list_page({prefix:?}, {after:?}, {limit}) failed: {e}"),
    }
}

async fn transaction(backend: &dyn Backend, ops: Vec<TxOp>) {
    if let Err(e) = backend.transaction(ops).await {
        panic!("transaction failed: {e}");
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs the whole single-client suite. `backend` must start empty.
pub async fn exercise_backend(backend: &dyn Backend) {
    assert!(
        list(backend, "").await.is_empty(),
        "exercise_backend needs an empty backend"
    );
    basic_crud(backend).await;
    listing(backend).await;
    paging(backend).await;
    transactions(backend).await;
    binary_values(backend).await;
    unusual_keys(backend).await;
}

async fn basic_crud(backend: &dyn Backend) {
    assert_eq!(get(backend, "crud/missing").await, None, "missing key");

    put(backend, "crud/k", "v1").await;
    assert_eq!(
        get(backend, "crud/k").await.as_deref(),
        Some(&b"v1"[..]),
        "round trip"
    );

    put(backend, "crud/k", "v2").await;
    assert_eq!(
        get(backend, "crud/k").await.as_deref(),
        Some(&b"v2"[..]),
        "overwrite"
    );

    backend.delete("crud/k").await.expect("delete existing key");
    assert_eq!(get(backend, "crud/k").await, None, "deleted key is gone");
    backend
        .delete("crud/k")
        .await
        .expect("delete of a missing key must succeed");
    assert!(
        list(backend, "").await.is_empty(),
        "nothing left after crud"
    );
}

async fn listing(backend: &dyn Backend) {
    for key in [
        "list/c",
        "list/a",
        "list/b/x",
        "list/b/y",
        "list/b/z/deep",
        "list/d/1",
        "listx",
        "fob",
        "foo/bar",
        "foo/baz",
    ] {
        put(backend, key, "v").await;
    }
    assert_eq!(
        list(backend, "list/").await,
        strings(&["a", "b/", "c", "d/"]),
        "immediate children, folders once, sorted"
    );
    assert_eq!(
        list(backend, "list/b/").await,
        strings(&["x", "y", "z/"]),
        "nested folder"
    );
    assert_eq!(
        list(backend, "").await,
        strings(&["fob", "foo/", "list/", "listx"]),
        "empty prefix lists the root"
    );
    assert_eq!(
        list(backend, "fo").await,
        strings(&["b", "o/"]),
        "a partial-name prefix matches keys starting with it, remainder split at the first '/'"
    );
    assert!(list(backend, "nope/").await.is_empty(), "unknown prefix");
    assert!(
        list(backend, "list/a/").await.is_empty(),
        "a leaf has no children"
    );
    assert_eq!(
        list_page(backend, "list/", "", 0).await,
        list(backend, "list/").await,
        "list_page without after/limit equals list"
    );
    assert_eq!(
        list_page(backend, "list/", "a", 2).await,
        strings(&["b/", "c"]),
        "list_page after a leaf"
    );
    assert_eq!(
        list_page(backend, "list/", "b/", 0).await,
        strings(&["c", "d/"]),
        "list_page after a folder skips the folder's contents"
    );
    assert!(
        list_page(backend, "list/", "d/", 10).await.is_empty(),
        "list_page after the last child"
    );

    backend.delete("list/b/x").await.expect("delete");
    backend.delete("list/b/y").await.expect("delete");
    backend.delete("list/b/z/deep").await.expect("delete");
    assert_eq!(
        list(backend, "list/").await,
        strings(&["a", "c", "d/"]),
        "a folder disappears with its last key"
    );
    for key in [
        "list/c", "list/a", "list/d/1", "listx", "fob", "foo/bar", "foo/baz",
    ] {
        backend.delete(key).await.expect("delete");
    }
}

async fn paging(backend: &dyn Backend) {
    let mut expected = Vec::new();
    for i in 0..200 {
        let name = format!("leaf{i:03}");
        put(backend, &format!("page/{name}"), "v").await;
        expected.push(name);
    }
    for i in 0..50 {
        for sub in ["x", "y/z"] {
            put(backend, &format!("page/dir{i:02}/{sub}"), "v").await;
        }
        expected.push(format!("dir{i:02}/"));
    }
    expected.sort();

    let mut seen: Vec<String> = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let after = seen.last().cloned().unwrap_or_default();
        let page = list_page(backend, "page/", &after, 100).await;
        if page.is_empty() {
            break;
        }
        assert!(sizes.len() < 10, "paging does not terminate");
        sizes.push(page.len());
        seen.extend(page);
    }
    assert_eq!(sizes, [100, 100, 50], "page sizes over 250 children");
    assert_eq!(
        seen, expected,
        "pages cover every child exactly once, in order"
    );
    assert_eq!(
        list(backend, "page/").await,
        expected,
        "list agrees with paging"
    );
}

async fn transactions(backend: &dyn Backend) {
    transaction(
        backend,
        vec![
            TxOp::Put(entry("tx/gone", "v")),
            TxOp::Delete("tx/gone".into()),
            TxOp::Put(entry("tx/a", "a")),
            TxOp::Put(entry("tx/b", "b")),
            TxOp::Put(entry("tx/last", "first")),
            TxOp::Put(entry("tx/last", "second")),
        ],
    )
    .await;
    assert_eq!(
        get(backend, "tx/gone").await,
        None,
        "put then delete in one tx"
    );
    assert_eq!(
        get(backend, "tx/a").await.as_deref(),
        Some(&b"a"[..]),
        "tx put a"
    );
    assert_eq!(
        get(backend, "tx/b").await.as_deref(),
        Some(&b"b"[..]),
        "tx put b"
    );
    assert_eq!(
        get(backend, "tx/last").await.as_deref(),
        Some(&b"second"[..]),
        "ops apply in order"
    );

    transaction(
        backend,
        vec![
            TxOp::Delete("tx/a".into()),
            TxOp::Delete("tx/missing".into()),
        ],
    )
    .await;
    assert_eq!(get(backend, "tx/a").await, None, "tx delete");
    transaction(backend, Vec::new()).await;
    assert_eq!(
        list(backend, "tx/").await,
        strings(&["b", "last"]),
        "tx results"
    );
}

async fn binary_values(backend: &dyn Backend) {
    let all_bytes: Vec<u8> = (0..=255).collect();
    put(backend, "bin/all", all_bytes.clone()).await;
    assert_eq!(
        get(backend, "bin/all").await,
        Some(all_bytes),
        "every byte value"
    );

    put(backend, "bin/empty", Vec::new()).await;
    assert_eq!(
        get(backend, "bin/empty").await,
        Some(Vec::new()),
        "an empty value is present, not missing"
    );

    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    put(backend, "bin/big", big.clone()).await;
    let read = get(backend, "bin/big").await;
    assert!(read.as_ref() == Some(&big), "1 MiB value round trip");
}

async fn unusual_keys(backend: &dyn Backend) {
    let keys = [
        "uni/héllo wörld/ключ",
        "uni/日本 語",
        "uni/emoji 🔐",
        "uni/with space",
    ];
    for (i, key) in keys.iter().enumerate() {
        put(backend, key, vec![u8::try_from(i).expect("few keys")]).await;
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            get(backend, key).await,
            Some(vec![u8::try_from(i).expect("few keys")]),
            "unicode key {key:?}"
        );
    }
    let mut expected = strings(&["héllo wörld/", "日本 語", "emoji 🔐", "with space"]);
    expected.sort();
    assert_eq!(list(backend, "uni/").await, expected, "unicode listing");
    assert_eq!(
        list(backend, "uni/héllo wörld/").await,
        strings(&["ключ"]),
        "unicode folder"
    );
}

/// 64 tasks doing 50 puts each at the same time; every write must be readable afterwards.
pub async fn exercise_concurrent_writers(backend: Arc<dyn Backend>) {
    const TASKS: usize = 64;
    const PUTS: usize = 50;
    let mut handles = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let backend = Arc::clone(&backend);
        handles.push(tokio::spawn(async move {
            for i in 0..PUTS {
                let key = format!("concurrent/{t:02}/{i:02}");
                put(backend.as_ref(), &key, key.clone()).await;
            }
        }));
    }
    for handle in handles {
        handle.await.expect("writer task panicked");
    }
    for t in 0..TASKS {
        for i in 0..PUTS {
            let key = format!("concurrent/{t:02}/{i:02}");
            assert_eq!(
                get(backend.as_ref(), &key).await.as_deref(),
                Some(key.as_bytes()),
                "concurrent write to {key:?} lost"
            );
        }
    }
    assert_eq!(
        list(backend.as_ref(), "concurrent/").await.len(),
        TASKS,
        "one folder per task"
    );
}
