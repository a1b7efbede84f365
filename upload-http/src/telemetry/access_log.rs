//! The access line of a request, formatted by hand.

use std::io::Write;
use std::net::IpAddr;

use actix_web::http::Version;

/// Appends the access-log message of a request to `out`:
/// `127.0.0.1 "GET /path?query HTTP/1.1" 200 0.000012`. Written by hand,
/// as `fmt` is most of the access log's cost per request.
pub(super) fn write_access_line(
    out: &mut Vec<u8>,
    req: &actix_web::HttpRequest,
    status: u16,
    secs: &[u8],
) {
    let mut digits = itoa::Buffer::new();
    match req.peer_addr().map(|a| a.ip()) {
        Some(IpAddr::V4(ip)) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        Some(ip) => {
            let _ = write!(out, "{ip}");
        }
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" \"");
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.uri().path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(match req.version() {
        Version::HTTP_09 => b" HTTP/0.9\" ",
        Version::HTTP_10 => b" HTTP/1.0\" ",
        Version::HTTP_2 => b" HTTP/2.0\" ",
        Version::HTTP_3 => b" HTTP/3.0\" ",
        _ => b" HTTP/1.1\" ",
    });
    out.extend_from_slice(digits.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(secs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_name_peer_request_status_and_time() {
        let req = actix_web::test::TestRequest::get()
            .uri("/files?limit=2&after=x")
            .peer_addr("10.0.0.7:4000".parse().unwrap())
            .version(Version::HTTP_10)
            .to_http_request();
        let mut out = Vec::new();
        write_access_line(&mut out, &req, 404, b"0.000012");
        assert_eq!(out, b"10.0.0.7 \"GET /files?limit=2&after=x HTTP/1.0\" 404 0.000012");
        let req = actix_web::test::TestRequest::delete()
            .uri("/files/1")
            .peer_addr("[::1]:4000".parse().unwrap())
            .to_http_request();
        out.clear();
        write_access_line(&mut out, &req, 204, b"1.000000");
        assert_eq!(out, b"::1 \"DELETE /files/1 HTTP/1.1\" 204 1.000000");
    }
}
