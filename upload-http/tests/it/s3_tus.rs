//! Resumable uploads across replicas of the real binary over one Garage
//! cluster: no sticky sessions, no state in a process.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::Response;

use crate::common::{Service, bytes, client, sha256_hex};
use crate::s3::{Cluster, wait_ready};

fn patch(base: &Service, location: &str, offset: usize, data: &[u8]) -> Response {
    client()
        .patch(base.url(location))
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset)
        .body(data.to_vec())
        .send()
        .unwrap()
}

fn offset(service: &Service, location: &str) -> u64 {
    let response =
        client().head(service.url(location)).header("Tus-Resumable", "1.0.0").send().unwrap();
    response.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

fn create(service: &Service, length: usize) -> String {
    let response = client()
        .post(service.url("/uploads/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length)
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// A PATCH whose body is only begun: the rest is never sent.
fn begin_patch(
    service: &Service,
    location: &str,
    offset: usize,
    total: usize,
    first: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(service.addr()).unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {total}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(first).unwrap();
    stream.flush().unwrap();
    stream
}

/// Two replicas of the binary over a fresh cluster, once both are ready;
/// `None` (the test is skipped) without a garage binary.
fn two_replicas() -> Option<(Cluster, Service, Service)> {
    let cluster = Cluster::new()?;
    cluster.start();
    let env = cluster.service_env();
    let (a, b) = (Service::spawn(&env), Service::spawn(&env));
    wait_ready(&a);
    wait_ready(&b);
    Some((cluster, a, b))
}

/// Retries `attempt` until it answers `want` (a lease of a killed replica
/// lapses within 15 s); panics after 40 s.
fn until_status(want: u16, mut attempt: impl FnMut() -> Response) -> Response {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let response = attempt();
        if response.status() == want {
            return response;
        }
        assert!(Instant::now() < deadline, "still {} after 40 s", response.status());
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn an_upload_moves_between_replicas_and_survives_one_killed_mid_patch() {
    let Some((cluster, a, b)) = two_replicas() else { return };
    let env = cluster.service_env();
    const MIB: usize = 1 << 20;
    let data = bytes(24 * MIB, 9);
    let location = create(&a, data.len());
    // 6 MiB through B, kept as a tail (parts are 8 MiB).
    assert_eq!(patch(&b, &location, 0, &data[..6 * MIB]).status(), 204);
    assert_eq!(offset(&a, &location), (6 * MIB) as u64);

    // The rest through A, killed (SIGKILL) once it has read 8 MiB of it.
    let _cut = begin_patch(&a, &location, 6 * MIB, data.len() - 6 * MIB, &data[6 * MIB..14 * MIB]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.metric("upload_bytes_received_total") < (8 * MIB) as f64 {
        assert!(Instant::now() < deadline, "A never read the body");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(a);
    // B resumes from the last offset saved; A's lease lapses by itself.
    let resumed = offset(&b, &location) as usize;
    assert_eq!(resumed, 6 * MIB, "a killed replica saves nothing it had not acknowledged");
    let done = until_status(204, || patch(&b, &location, resumed, &data[resumed..]));
    assert_eq!(done.headers()["upload-offset"], data.len().to_string().as_str());

    // A restarted A serves the file the upload became.
    let a = Service::spawn(&env);
    wait_ready(&a);
    let id = location.rsplit('/').next().unwrap();
    assert!(a.download(id) == data);
    let listed: serde_json::Value = client().get(a.url("/files")).send().unwrap().json().unwrap();
    assert_eq!(listed["files"][0]["sha256"], sha256_hex(&data));
}

#[test]
fn two_patches_at_once_on_two_replicas_one_wins() {
    let Some((_cluster, a, b)) = two_replicas() else { return };
    let (ours, theirs) = (bytes(3 << 20, 1), bytes(3 << 20, 2));
    let location = create(&a, ours.len());
    // A's PATCH holds the upload while its body arrives...
    let mut slow = begin_patch(&a, &location, 0, ours.len(), &ours[..1 << 20]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.metric("upload_bytes_received_total") < (1 << 20) as f64 {
        assert!(Instant::now() < deadline, "A never read the body");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ... so B's, at the same offset, is refused.
    let refused = patch(&b, &location, 0, &theirs);
    assert!(matches!(refused.status().as_u16(), 409 | 423), "{}", refused.status());
    slow.write_all(&ours[1 << 20..]).unwrap();
    let answer = crate::common::read_response(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    let id = location.rsplit('/').next().unwrap();
    assert!(b.download(id) == ours);
}

#[test]
fn tuspy_resumes_an_upload_cut_mid_patch_on_s3() {
    let Some(cluster) = Cluster::new() else { return };
    if !crate::tus_client::tuspy_installed() {
        return;
    }
    cluster.start();
    let mut env = cluster.service_env();
    env.push(("UPLOAD__LIMITS__MAX_FILE_SIZE".into(), "2GiB".into()));
    let service = Service::spawn(&env);
    wait_ready(&service);
    let dir = tempfile::tempdir().unwrap();
    crate::tus_client::cut_and_resume(&service, dir.path());
}
