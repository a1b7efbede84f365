//! HTTP/1.1 framing under hostile clients, on raw sockets: request
//! smuggling shapes are refused and close the connection, header size and
//! count are bounded, and pipelined requests are answered in order.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;

/// Sends `request` and reads until the server closes (bounded by a timeout).
fn exchange_to_close(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may refuse and close before it has read everything we send.
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn statuses(responses: &str) -> Vec<u16> {
    responses
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| responses[i + 9..i + 12].parse().unwrap())
        .collect()
}

/// A smuggled second request hidden in the first one's body.
const SMUGGLED: &str = "GET /files HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn content_length_with_chunked_is_refused_and_nothing_behind_it_is_served() {
    let server = Server::start();
    let body = format!("0\r\n\r\n{SMUGGLED}");
    for te in ["chunked", "Chunked", " chunked", "gzip, chunked"] {
        let request = format!(
            "PUT /files/a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nTransfer-Encoding: {te}\r\n\r\n{body}",
            body.len()
        );
        let answer = exchange_to_close(&server.addr(), request.as_bytes());
        assert_eq!(statuses(&answer), [400], "TE {te:?}: {answer}");
    }
    server.assert_nothing_stored();
}

#[test]
fn conflicting_or_malformed_lengths_are_refused() {
    let server = Server::start();
    for lengths in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
        "Content-Length: -5",
        "Content-Length: +5",
        "Content-Length: 0x5",
        "Content-Length: 99999999999999999999999",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: identity",
    ] {
        let request =
            format!("PUT /files/a.txt HTTP/1.1\r\nHost: t\r\n{lengths}\r\n\r\nhello{SMUGGLED}");
        let answer = exchange_to_close(&server.addr(), request.as_bytes());
        let got = statuses(&answer);
        assert!(got.len() == 1 && got[0] >= 400 && got[0] < 500, "{lengths:?}: {answer}");
    }
    server.assert_nothing_stored();
    // An invalid chunk size mid-body ends the request, with nothing stored.
    let request = format!(
        "PUT /files/a.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n{SMUGGLED}"
    );
    let answer = exchange_to_close(&server.addr(), request.as_bytes());
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    assert!(statuses(&answer).len() <= 1, "the smuggled request was answered: {answer}");
    server.assert_nothing_stored();
}

#[test]
fn header_size_and_count_are_bounded_and_the_service_keeps_serving() {
    let server = Server::start();
    // actix-http's bounds: 96 headers, and a head still incomplete after 128 KiB is refused.
    let huge =
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20));
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{many}\r\n");
    for (what, request) in [("a 1 MiB header", huge), ("100 headers", many)] {
        let answer = exchange_to_close(&server.addr(), request.as_bytes());
        let got = statuses(&answer);
        assert!(got.len() == 1 && [400, 431].contains(&got[0]), "{what}: {answer}");
    }
    // Headers sent forever are cut off too, not buffered without end.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").unwrap();
    let line = format!("X-More: {}\r\n", "b".repeat(1000));
    let cut_off = (0..10_000).any(|_| stream.write_all(line.as_bytes()).is_err());
    assert!(cut_off, "10 MB of headers were accepted");
    assert_eq!(client().get(server.url("/healthz")).send().unwrap().status(), 200);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let put = "PUT /files/p.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc";
    let request = format!(
        "GET /fib/20 HTTP/1.1\r\nHost: t\r\n\r\n{put}GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /asyncwait?duration=0.05 HTTP/1.1\r\nHost: t\r\n\
         Connection: close\r\n\r\n"
    );
    let answer = exchange_to_close(&server.addr(), request.as_bytes());
    assert_eq!(statuses(&answer), [200, 201, 200, 404, 200], "{answer}");
    let (fib, rest) = answer.split_once("{\"n\":20,").expect("fib(20) first");
    assert!(fib.starts_with("HTTP/1.1 200"));
    let order = ["\"sha256\"", "\"status\":\"ok\"", "no_route", "\"duration\":0.05"];
    let mut at = 0;
    for marker in order {
        let found =
            rest[at..].find(marker).unwrap_or_else(|| panic!("{marker} after {at}: {rest}"));
        at += found;
    }
}
