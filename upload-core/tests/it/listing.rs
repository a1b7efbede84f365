use upload_core::{Error, ObjectId, PutOptions, Storage};

use crate::common::*;

on_both_backends!(
    lists_in_id_order_with_a_cursor,
    deleted_objects_are_gone_everywhere,
    unknown_ids_are_not_found,
);

async fn lists_in_id_order_with_a_cursor(backend: Backend) {
    let t = TestStore::open(backend).await;
    let storage = &t.storage;
    let mut ids = Vec::new();
    for i in 0..23u8 {
        ids.push(storage.put(chunked(&[i], &[]), PutOptions::default()).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = storage.list(after, 5).await.unwrap();
        assert!(page.files.len() <= 5);
        seen.extend(page.files.iter().map(|f| f.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    // A limit of 0 is taken as 1.
    let first = storage.list(None, 0).await.unwrap();
    assert_eq!((first.files.len(), first.next), (1, Some(ids[0])));
    let all = storage.list(None, 1000).await.unwrap();
    assert_eq!(all.files.len(), 23);
    assert_eq!(all.next, None);
    let tail = storage.list(Some(ids[20]), 1000).await.unwrap();
    assert_eq!(tail.files.iter().map(|f| f.id).collect::<Vec<_>>(), ids[21..]);
}

async fn deleted_objects_are_gone_everywhere(backend: Backend) {
    let t = TestStore::open(backend).await;
    let storage = &t.storage;
    let a = storage.put(chunked(b"a", &[]), PutOptions::default()).await.unwrap();
    let b = storage.put(chunked(b"b", &[]), PutOptions::default()).await.unwrap();
    storage.delete(&a.id).await.unwrap();

    assert!(matches!(storage.head(&a.id).await, Err(Error::NotFound(_))));
    assert!(matches!(storage.get(&a.id, None).await, Err(Error::NotFound(_))));
    assert!(matches!(storage.delete(&a.id).await, Err(Error::NotFound(_))));
    let page = storage.list(None, 10).await.unwrap();
    assert_eq!(page.files, vec![b.clone()]);
    assert_eq!(t.stored().await, vec![b.id.to_string()]);
    assert_eq!(t.leftovers().await, Vec::<String>::new());
}

async fn unknown_ids_are_not_found(backend: Backend) {
    let t = TestStore::open(backend).await;
    let storage = &t.storage;
    let id = ObjectId::new();
    assert!(matches!(storage.head(&id).await, Err(Error::NotFound(_))));
    assert!(matches!(storage.get(&id, None).await, Err(Error::NotFound(_))));
    assert!(storage.list(None, 10).await.unwrap().files.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reopened_store_lists_what_it_held_and_only_that() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    {
        let storage = Storage::open(&config(dir.path(), true)).await.unwrap();
        for i in 0..5u8 {
            ids.push(storage.put(chunked(&[i], &[]), PutOptions::default()).await.unwrap().id);
        }
        storage.delete(&ids.remove(1)).await.unwrap();
    }
    // Names that are not ids are not objects, whatever put them there.
    std::fs::create_dir(dir.path().join("objects/lost+found")).unwrap();
    std::fs::write(dir.path().join("objects/notes.txt"), b"x").unwrap();

    let storage = Storage::open(&config(dir.path(), true)).await.unwrap();
    let listed = |page: upload_core::Page| page.files.iter().map(|f| f.id).collect::<Vec<_>>();
    assert_eq!(listed(storage.list(None, 100).await.unwrap()), ids);
    let page = storage.list(Some(ids[0]), 2).await.unwrap();
    assert_eq!((listed(page.clone()), page.next), (ids[1..3].to_vec(), Some(ids[2])));

    // Puts and deletes after the reopen keep the listing in step.
    storage.delete(&ids.remove(0)).await.unwrap();
    ids.push(storage.put(chunked(b"new", &[]), PutOptions::default()).await.unwrap().id);
    assert_eq!(listed(storage.list(None, 100).await.unwrap()), ids);
}
