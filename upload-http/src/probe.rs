//! The container health check: this binary asking the running service.

use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::time::Duration;

use crate::settings::ServerSettings;

/// Asks the service described by `server` for `path` (e.g. `/readyz`) and
/// returns the response's status code: what a container health check runs,
/// with no tool but this binary. A wildcard host (`0.0.0.0`, `::`) is
/// reached on loopback.
///
/// # Errors
/// If there is no answer within `timeout` or the answer is not HTTP.
pub fn probe(server: &ServerSettings, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let host = match server.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "::1",
        host => host,
    };
    let addr = (host, server.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12])
        .ok()
        .filter(|_| head.starts_with(b"HTTP/1."))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))
}
