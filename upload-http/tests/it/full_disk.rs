//! A full disk, on a 64 MiB loop-mounted ext4 and a 64 MiB tmpfs: uploads
//! past the space get 507 `storage_full` and leave nothing, a tus append
//! keeps its offset and resumes, reads and deletes keep working, and uploads
//! succeed again once space is freed.

use reqwest::blocking::multipart::{Form, Part};

use crate::common::*;
use crate::tus::{header, offset, patch, tus};

/// Needs root to mount; says so and passes elsewhere (CI runs as root).
fn on_full_disk(disk: Option<SmallDisk>) {
    let Some(disk) = disk else {
        eprintln!("skipped: mounting a small file system needs root (CAP_SYS_ADMIN)");
        return;
    };
    let root = disk.path().join("data");
    let service = Service::spawn(&[("UPLOAD__STORAGE__ROOT", root.to_str().unwrap())]);
    // A resumable upload created while there is room, appended to once there is none.
    let resumable = bytes(8 << 20, 50);
    let created =
        tus(client().post(service.url("/uploads/")).header("Upload-Length", resumable.len()));
    assert_eq!(created.status(), 201);
    let tus_url = service.url(header(created.headers(), "location").unwrap());
    // Fill it with 4 MiB raw uploads until one is refused (64 MiB: at most 16 fit).
    let mut stored = Vec::new();
    let refused = (0..40u8).find_map(|i| match service.put("fill.bin", bytes(4 << 20, i)) {
        Ok(info) => {
            stored.push((info["id"].as_str().unwrap().to_owned(), sha256_hex(&bytes(4 << 20, i))));
            None
        }
        Err(e) => Some(e),
    });
    assert_eq!(refused, Some((507, "storage_full".into())), "after {} files", stored.len());
    assert!(stored.len() >= 8, "only {} files of 4 MiB fit in 64 MiB", stored.len());
    // The other ways of uploading are refused the same way.
    let form = Form::new().part("f", Part::bytes(bytes(8 << 20, 99)).file_name("m.bin"));
    let multipart = client().post(service.url("/files")).multipart(form).send().unwrap();
    assert_eq!(error_code(multipart), (507, "storage_full".into()));
    assert_eq!(error_code(patch(&tus_url, 0, &resumable)), (507, "storage_full".into()));
    // What the append got on disk before the space ran out may stay; the offset says how much.
    let kept = offset(&tus_url).expect("the upload survives a refused append");
    assert!(kept < resumable.len() as u64);
    let assert_nothing_partial = |stored: &[(String, String)]| {
        let tmp = std::fs::read_dir(root.join("tmp")).unwrap().count();
        assert_eq!(tmp, 0, "a refused upload left {tmp} entries in tmp/");
        let listed: serde_json::Value =
            client().get(service.url("/files?limit=1000")).send().unwrap().json().unwrap();
        assert_eq!(listed["files"].as_array().unwrap().len(), stored.len());
    };
    assert_nothing_partial(&stored);
    // Reads keep working while full.
    assert_eq!(service.status("/healthz"), 200);
    for (id, sha) in &stored {
        assert_eq!(&sha256_hex(&service.download(id)), sha);
    }
    // Deleting while full works, and frees room for the next uploads.
    for (id, _) in stored.drain(..4) {
        let response = client().delete(service.url(&format!("/files/{id}"))).send().unwrap();
        assert_eq!(response.status(), 204);
    }
    let again = service.put("again.bin", bytes(4 << 20, 7)).expect("an upload after a delete");
    assert_eq!(again["sha256"], sha256_hex(&bytes(4 << 20, 7)));
    stored.push((again["id"].as_str().unwrap().to_owned(), String::new()));
    let rest = usize::try_from(kept).unwrap();
    assert_eq!(patch(&tus_url, kept, &resumable[rest..]).status(), 204);
    assert!(service.download(tus_url.rsplit('/').next().unwrap()) == resumable);
    stored.push((String::new(), String::new()));
    assert_nothing_partial(&stored);
    drop(service);
}

#[test]
fn a_full_ext4_refuses_uploads_cleanly_and_recovers_after_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mnt");
    std::fs::create_dir(&mount).unwrap();
    on_full_disk(SmallDisk::ext4(mount, &dir.path().join("disk.img"), 64));
}

#[test]
fn a_full_tmpfs_refuses_uploads_cleanly_and_recovers_after_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    on_full_disk(SmallDisk::tmpfs(dir.path().to_owned(), "64m"));
}
