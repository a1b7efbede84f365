use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
fn fib_answers_and_validates_n() {
    let server = Server::start();
    let r = client().get(server.url("/fib/30")).send().unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().unwrap();
    assert_eq!((body["n"].as_u64(), body["fib"].as_u64()), (Some(30), Some(1_346_269)));
    for bad in ["-1", "1.5", "abc", "47", "99999999999"] {
        let r = client().get(server.url(&format!("/fib/{bad}"))).send().unwrap();
        assert_eq!(error_code(r), (400, "invalid_n".into()), "{bad}");
    }
}

#[test]
fn a_full_pool_answers_503_with_retry_after_and_a_deadline_stops_the_job() {
    let server = Server::with(|raw| {
        raw.compute.max_jobs = 1;
        raw.compute.timeout = upload_http::Span::Text("2s".into());
    });
    let long = std::thread::spawn({
        let url = server.url("/fib/46");
        move || client().get(url).send().unwrap()
    });
    eventually(|| server.metric("compute_jobs{state=\"running\"}") == 1.0);
    let busy = client().get(server.url("/fib/20")).send().unwrap();
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_eq!(error_code(busy), (503, "compute_busy".into()));
    // fib(46) takes far longer than 2 s: stopped at the deadline, with its own code.
    let (status, code) = error_code(long.join().unwrap());
    assert_eq!((status, code.as_str()), (503, "compute_timeout"));
    assert_eq!(server.metric("compute_jobs_total{outcome=\"timed_out\"}"), 1.0);
    assert_eq!(server.metric("compute_jobs_total{outcome=\"rejected\"}"), 1.0);
}

#[test]
fn a_client_that_goes_away_cancels_its_job() {
    let server = Server::start();
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /fib/46 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    eventually(|| server.metric("compute_jobs{state=\"running\"}") == 1.0);
    drop(stream);
    eventually(|| server.metric("compute_jobs_total{outcome=\"cancelled\"}") == 1.0);
    assert_eq!(server.metric("compute_jobs{state=\"running\"}"), 0.0);
}

#[test]
fn asyncwait_keeps_answering_while_fib_42_runs() {
    let server = Server::start();
    let fib = std::thread::spawn({
        let url = server.url("/fib/42");
        move || client().get(url).send().unwrap().json::<Value>().unwrap()
    });
    eventually(|| server.metric("compute_jobs{state=\"running\"}") == 1.0);
    let c = client();
    for _ in 0..50 {
        let r = c.get(server.url("/asyncwait?duration=0")).send().unwrap();
        assert_eq!(r.status(), 200);
    }
    // All 50 answered while the computation was still running.
    assert_eq!(
        server.metric("compute_jobs{state=\"running\"}"),
        1.0,
        "fib(42) ended first: inconclusive"
    );
    assert_eq!(fib.join().unwrap()["fib"], 433_494_437);
}

#[test]
fn wait_and_asyncwait_validate_duration() {
    let server = Server::start();
    for path in ["/wait", "/asyncwait"] {
        let body: Value = client().get(server.url(path)).send().unwrap().json().unwrap();
        assert_eq!(body["duration"], 0.05, "{path} default");
        let started = std::time::Instant::now();
        let body: Value = client()
            .get(server.url(&format!("{path}?duration=0.2")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(body["duration"], 0.2);
        assert!(started.elapsed() >= Duration::from_millis(200), "{path} returned early");
        for bad in ["-1", "61", "NaN", "abc", "inf"] {
            let r = client().get(server.url(&format!("{path}?duration={bad}"))).send().unwrap();
            assert_eq!(error_code(r), (400, "invalid_duration".into()), "{path} {bad}");
        }
    }
}
