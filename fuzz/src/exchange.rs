//! How the `request` fuzz target and its replay test (`upload-http/tests/it/fuzz_corpus.rs`,
//! which includes this file) send one input: the bytes as they are, then the answers read until
//! every complete request in them is answered, then the connection closed. Closing earlier would
//! cancel the handlers (the service drops a request whose client half-closes); waiting for the
//! server to close would wait out its keep-alive on every input.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// Sends `input` to `addr` and returns everything the service answered.
pub fn exchange(addr: &str, input: &[u8]) -> Vec<u8> {
    let mut answer = Vec::new();
    let Ok(mut stream) = TcpStream::connect(addr) else { return answer };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // The service may answer and close before it has read everything.
    let _ = stream.write_all(input);
    let expected = complete_messages(input, true);
    let mut buf = [0u8; 16 * 1024];
    while complete_messages(&answer, false) < expected {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return answer,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// How many whole HTTP/1.1 messages (requests, or else responses) `bytes` starts with: a head,
/// then a body of its `Content-Length` or its chunks. Stops at the first one that is cut short
/// or malformed. A malformed head counts: the service answers it, then closes.
fn complete_messages(mut bytes: &[u8], requests: bool) -> usize {
    let mut count = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let head = if requests {
            httparse::Request::new(&mut headers).parse(bytes)
        } else {
            httparse::Response::new(&mut headers).parse(bytes)
        };
        let end = match head {
            Ok(httparse::Status::Complete(end)) => end,
            Ok(httparse::Status::Partial) => return count,
            Err(_) => return count + usize::from(requests),
        };
        let header = |name: &str| {
            headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
        };
        let body = &bytes[end..];
        let len = if header("transfer-encoding").is_some() {
            chunked_len(body)
        } else {
            match header("content-length").map(std::str::from_utf8) {
                None => Some(0),
                Some(Ok(v)) => v.trim().parse::<usize>().ok().filter(|n| *n <= body.len()),
                Some(Err(_)) => None,
            }
        };
        match len {
            Some(len) => {
                count += 1;
                bytes = &body[len..];
                if bytes.is_empty() {
                    return count;
                }
            }
            // A body cut short (or framed so badly that the service refuses it and closes).
            None => return count,
        }
    }
}

/// The length of a whole chunked body at the start of `body`, trailers included.
fn chunked_len(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let httparse::Status::Complete((skip, size)) =
            httparse::parse_chunk_size(&body[at..]).ok()?
        else {
            return None;
        };
        at += skip;
        if size == 0 {
            // Trailers, then an empty line.
            let rest = body.get(at..)?;
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            if end == 0 {
                return Some(at + 2);
            }
            let trailers = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
            return Some(at + trailers + 4);
        }
        at = at.checked_add(usize::try_from(size).ok()?)?.checked_add(2)?;
        if at > body.len() {
            return None;
        }
    }
}
