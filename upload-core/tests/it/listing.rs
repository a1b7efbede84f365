use upload_core::{Error, ObjectId, PutOptions};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn lists_in_id_order_with_a_cursor() {
    let (_dir, storage) = store().await;
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

    let all = storage.list(None, 1000).await.unwrap();
    assert_eq!(all.files.len(), 23);
    assert_eq!(all.next, None);
    let tail = storage.list(Some(ids[20]), 1000).await.unwrap();
    assert_eq!(tail.files.iter().map(|f| f.id).collect::<Vec<_>>(), ids[21..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_objects_are_gone_everywhere() {
    let (dir, storage) = store().await;
    let a = storage.put(chunked(b"a", &[]), PutOptions::default()).await.unwrap();
    let b = storage.put(chunked(b"b", &[]), PutOptions::default()).await.unwrap();
    storage.delete(&a.id).await.unwrap();

    assert!(matches!(storage.head(&a.id).await, Err(Error::NotFound(_))));
    assert!(matches!(storage.get(&a.id, None).await, Err(Error::NotFound(_))));
    assert!(matches!(storage.delete(&a.id).await, Err(Error::NotFound(_))));
    let page = storage.list(None, 10).await.unwrap();
    assert_eq!(page.files, vec![b.clone()]);
    assert_eq!(entries(dir.path(), "objects"), vec![b.id.to_string()]);
    assert_eq!(entries(dir.path(), "tmp"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ids_are_not_found() {
    let (_dir, storage) = store().await;
    let id = ObjectId::new();
    assert!(matches!(storage.head(&id).await, Err(Error::NotFound(_))));
    assert!(matches!(storage.get(&id, None).await, Err(Error::NotFound(_))));
    assert!(storage.list(None, 10).await.unwrap().files.is_empty());
}
