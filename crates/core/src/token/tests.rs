//! Token store tests over a real (in-memory) barrier.

use std::{sync::Arc, time::Duration};

use mayfly_barrier::{Barrier, ShamirSeal};

use super::*;

async fn store() -> TokenStore {
    let physical: Arc<dyn mayfly_storage::Backend> = Arc::new(mayfly_storage::InmemBackend::new());
    let barrier = Arc::new(Barrier::new(physical.clone()));
    let seal = ShamirSeal::new(physical, barrier.clone());
    let init = seal.initialize(1, 1).await.unwrap();
    seal.submit_unseal_key(&init.keys[0]).await.unwrap();
    TokenStore::open(BarrierView::new(barrier, "sys/token/"), Clock::tokio())
        .await
        .unwrap()
}

impl TokenStore {
    /// Writes a token without a lease: enough for the store's own behaviour.
    async fn create(&self, new: NewToken) -> Result<(String, TokenEntry)> {
        let (token, entry) = self.prepare(new).await?;
        let mut txn = Txn::new();
        self.stage_create(&entry, &mut txn)?;
        txn.commit(self.view.barrier()).await?;
        self.remember(&entry);
        Ok((token, entry))
    }

    async fn create_root(&self, id: Option<String>) -> Result<(String, TokenEntry)> {
        self.create(NewToken::root(id)).await
    }
}

fn child_of(parent: &TokenEntry) -> NewToken {
    NewToken {
        policies: vec!["default".into()],
        parent_hash: Some(parent.id_hash.clone()),
        path: "auth/token/create".into(),
        display_name: "token".into(),
        ttl: Duration::from_secs(3600),
        renewable: true,
        ..NewToken::default()
    }
}

#[tokio::test]
async fn creation_stores_the_entry_with_every_index() {
    let store = store().await;
    let (_, root) = store.create_root(None).await.unwrap();
    let (token, child) = store.create(child_of(&root)).await.unwrap();
    let hash = store.hash(&token);
    for key in [
        format!("id/{hash}"),
        format!("accessor/{}", child.accessor),
        format!("parent/{}/{hash}", root.id_hash),
    ] {
        assert!(
            store.view.get(&key).await.unwrap().is_some(),
            "{key} missing"
        );
    }
    // A store with an empty cache reads the same entry back from storage.
    let fresh = TokenStore::open(store.view.sub_view(""), Clock::tokio())
        .await
        .unwrap();
    assert_eq!(fresh.lookup(&token).await.unwrap(), Some(child.clone()));
    let shared = fresh.lookup_shared(&token).await.unwrap().unwrap();
    assert_eq!(*shared, child);
    assert_eq!(
        fresh.lookup_accessor(&child.accessor).await.unwrap(),
        Some(child)
    );
}

#[tokio::test]
async fn tokens_are_stored_by_salted_hash_only() {
    let store = store().await;
    let (token, entry) = store.create_root(None).await.unwrap();
    assert!(token.starts_with("hvs.") && token.len() == ROOT_TOKEN_LENGTH);
    assert_eq!(entry.id_hash, store.hash(&token));
    assert!(entry.id_hash.starts_with('h'));
    assert!(!entry.id_hash.contains(&token));
    let found = store.lookup(&token).await.unwrap().unwrap();
    assert_eq!(found, entry);
    let by_accessor = store
        .lookup_accessor(&entry.accessor)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_accessor.id_hash, entry.id_hash);
    assert!(store.lookup("hvs.unknown").await.unwrap().is_none());
}

#[tokio::test]
async fn children_are_listed_and_orphaned() {
    let store = store().await;
    let (_, root) = store.create_root(None).await.unwrap();
    let (_, child) = store.create(child_of(&root)).await.unwrap();
    let (grandchild_token, _) = store.create(child_of(&child)).await.unwrap();
    assert_eq!(
        store.children_page(&root.id_hash, "", 10).await.unwrap(),
        vec![child.id_hash.clone()]
    );
    store.orphan_children(&child.id_hash).await.unwrap();
    let grandchild = store.lookup(&grandchild_token).await.unwrap().unwrap();
    assert_eq!(grandchild.parent_hash, None);
    assert!(
        store
            .children_page(&child.id_hash, "", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn use_limited_tokens_run_out() {
    let store = store().await;
    let (token, entry) = store
        .create(NewToken {
            num_uses: 2,
            ..child_of(&store.create_root(None).await.unwrap().1)
        })
        .await
        .unwrap();
    assert_eq!(
        store.spend_use(&entry.id_hash).await.unwrap(),
        UseOutcome::Counted
    );
    assert_eq!(
        store.spend_use(&entry.id_hash).await.unwrap(),
        UseOutcome::LastUse
    );
    assert_eq!(
        store.spend_use(&entry.id_hash).await.unwrap(),
        UseOutcome::Invalid
    );
    assert!(
        store.lookup(&token).await.unwrap().is_some(),
        "visible until revoked"
    );
}

#[tokio::test(start_paused = true)]
async fn expired_tokens_are_not_live() {
    let store = store().await;
    let (_, root) = store.create_root(None).await.unwrap();
    let (token, _) = store
        .create(NewToken {
            ttl: Duration::from_secs(1),
            ..child_of(&root)
        })
        .await
        .unwrap();
    assert!(store.lookup(&token).await.unwrap().is_some());
    tokio::time::advance(Duration::from_millis(2100)).await;
    assert!(store.lookup(&token).await.unwrap().is_none());
    assert!(
        store
            .entry_any(&store.hash(&token))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn tidy_removes_dangling_indexes() {
    let store = store().await;
    let (_, root) = store.create_root(None).await.unwrap();
    let (_, child) = store.create(child_of(&root)).await.unwrap();
    // Simulate a crash between deleting the entry and its indexes.
    store
        .view
        .delete(&TokenStore::id_key(&child.id_hash))
        .await
        .unwrap();
    let report = store.tidy().await.unwrap();
    assert_eq!(report.accessors, 1);
    assert_eq!(report.parent_links, 1);
}

#[test]
fn policies_are_sorted_with_default_unless_root() {
    assert_eq!(
        finalize_policies(vec!["web".into(), "app".into()], false),
        ["app", "default", "web"]
    );
    assert_eq!(finalize_policies(vec!["web".into()], true), ["web"]);
    assert_eq!(
        finalize_policies(vec!["root".into(), "x".into()], false),
        ["root"]
    );
    assert_eq!(sanitize_display_name("token-my app!"), "token-my-app-");
}
