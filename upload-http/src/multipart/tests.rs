use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use std::pin::pin;

use futures_util::TryStreamExt;
use proptest::prelude::*;

use super::*;

/// One part as a parser saw it: name, file name, content type, bytes.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

fn run<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

/// `body` cut at `splits` into the chunks the network would deliver.
fn chunks(body: &[u8], splits: &[usize]) -> Vec<Bytes> {
    let mut at: Vec<usize> = splits.iter().map(|s| s % (body.len() + 1)).collect();
    at.extend([0, body.len()]);
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| Bytes::copy_from_slice(&body[w[0]..w[1]])).collect()
}

fn ours(chunks: Vec<Bytes>, boundary: &str) -> Result<Vec<Seen>, BodyError> {
    run(async {
        let mut parts = Multipart::new(stream::iter(chunks.into_iter().map(Ok)), boundary);
        let mut seen = Vec::new();
        while let Some(part) = parts.next_part().await? {
            let data: Vec<Bytes> = parts.body().try_collect().await?;
            seen.push(Seen {
                name: part.disposition.get_name().unwrap().to_owned(),
                filename: part.disposition.get_filename().map(str::to_owned),
                content_type: part.content_type,
                data: data.concat(),
            });
        }
        Ok(seen)
    })
}

fn actix_multipart(chunks: Vec<Bytes>, boundary: &str) -> Vec<Seen> {
    let mut headers = HeaderMap::new();
    let content_type = format!("multipart/form-data; boundary={boundary}");
    headers.insert(CONTENT_TYPE, HeaderValue::from_str(&content_type).unwrap());
    run(async {
        let input = stream::iter(chunks.into_iter().map(Ok::<_, PayloadError>));
        let mut multipart = actix_multipart::Multipart::new(&headers, input);
        let mut seen = Vec::new();
        while let Some(field) = multipart.next().await {
            let field = field.unwrap();
            let cd = field.content_disposition().unwrap().clone();
            let content_type = field.content_type().map(ToString::to_string);
            let data: Vec<Bytes> = field.try_collect().await.unwrap();
            seen.push(Seen {
                name: cd.get_name().unwrap().to_owned(),
                filename: cd.get_filename().map(str::to_owned),
                content_type,
                data: data.concat(),
            });
        }
        seen
    })
}

fn encode(boundary: &str, parts: &[Seen], preamble: &str, epilogue: &str) -> Vec<u8> {
    let mut body = Vec::new();
    if !preamble.is_empty() {
        body.extend_from_slice(format!("{preamble}\r\n").as_bytes());
    }
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let filename =
            part.filename.as_ref().map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
        let disposition = format!("form-data; name=\"{}\"{filename}", part.name);
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n").as_bytes());
        if let Some(content_type) = &part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n{epilogue}").as_bytes());
    body
}

/// Bytes rich in what a delimiter is made of, with beginnings of the
/// delimiter itself inserted, so that chunks often end mid-way through one.
fn part_data(boundary: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![any::<u8>(), Just(b'\r'), Just(b'\n'), Just(b'-')];
    let near_miss = (0..boundary.len()).prop_map(move |k| format!("\r\n--{}", &boundary[..k]));
    let piece = prop_oneof![
        proptest::collection::vec(byte, 0..400),
        near_miss.prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

fn parts(boundary: &'static str) -> impl Strategy<Value = Vec<Seen>> {
    let content_type = proptest::option::of(prop_oneof![
        Just("text/plain".to_owned()),
        Just("application/octet-stream".to_owned())
    ]);
    let part =
        ("[a-z]{1,8}", proptest::option::of("[a-z.]{1,10}"), content_type, part_data(boundary))
            .prop_map(|(name, filename, content_type, data)| Seen {
                name,
                filename,
                content_type,
                data,
            });
    proptest::collection::vec(part, 1..4)
}

fn case() -> impl Strategy<Value = (&'static str, Vec<Seen>, String, String, Vec<usize>)> {
    prop_oneof![Just("x"), Just("abc"), Just("----WebKitFormBoundaryAbC123xyz")].prop_flat_map(
        |boundary| {
            (
                Just(boundary),
                parts(boundary),
                "[ -~]{0,40}",
                "[ -~]{0,40}",
                proptest::collection::vec(0..20_000usize, 0..24),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Any body, cut anywhere: every part comes out whole, as sent, and as
    /// actix-multipart reads it.
    #[test]
    fn parts_come_out_as_sent_however_the_body_is_cut(
        (boundary, sent, preamble, epilogue, splits) in case()
    ) {
        let delimiter = format!("\r\n--{boundary}");
        let has = |data: &[u8], needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
        prop_assume!(sent.iter().all(|p| !has(&p.data, delimiter.as_bytes())));
        prop_assume!(!preamble.contains(&format!("--{boundary}")));
        let body = encode(boundary, &sent, &preamble, &epilogue);
        let seen = ours(chunks(&body, &splits), boundary).unwrap();
        prop_assert_eq!(&seen, &sent);
        // actix-multipart also ends a part at `\r--boundary` (no `\n`): compare where there is none.
        let quirk = format!("\r--{boundary}");
        if !sent.iter().any(|p| has(&p.data, quirk.as_bytes())) {
            prop_assert_eq!(actix_multipart(chunks(&body, &splits), boundary), seen);
        }
    }
}

#[test]
fn a_big_chunk_is_handed_on_without_a_copy() {
    let data = vec![7u8; 100_000];
    let part = Seen { name: "f".into(), filename: Some("a".into()), content_type: None, data };
    let body = Bytes::from(encode("abc", &[part], "", ""));
    let range = body.as_ptr_range();
    run(async {
        let mut parts = Multipart::new(stream::iter([Ok(body.clone())]), "abc");
        parts.next_part().await.unwrap().unwrap();
        let first = pin!(parts.body()).try_next().await.unwrap().unwrap();
        assert!(first.len() >= 99_000, "{}", first.len());
        assert!(range.contains(&first.as_ptr()), "a slice of the chunk received, not a copy");
    });
}

#[test]
fn padding_after_a_boundary_is_allowed_and_an_unread_part_is_skipped() {
    let body = "--abc  \t\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nskipped\r\n\
                --abc\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nread\r\n--abc--";
    run(async {
        let mut parts = Multipart::new(stream::iter([Ok(Bytes::from(body))]), "abc");
        assert_eq!(parts.next_part().await.unwrap().unwrap().disposition.get_name(), Some("a"));
        let b = parts.next_part().await.unwrap().unwrap();
        assert_eq!(b.disposition.get_name(), Some("b"));
        let data: Vec<Bytes> = parts.body().try_collect().await.unwrap();
        assert_eq!(data.concat(), b"read");
        assert!(parts.next_part().await.unwrap().is_none());
    });
}

#[test]
fn malformed_bodies_are_refused_with_the_reason() {
    let cd = "Content-Disposition: form-data; name=\"f\"\r\n";
    let many_lines = format!("--abc\r\n{cd}{}\r\ndata\r\n--abc--", "X-A: b\r\n".repeat(40));
    let long_headers = format!("--abc\r\n{cd}X-A: {}\r\n\r\ndata\r\n--abc--", "n".repeat(70_000));
    let long_preamble = format!("{}\r\n--abc--", "p".repeat(70_000));
    let cases: [(&str, String, &str); 8] = [
        ("cut inside a part", format!("--abc\r\n{cd}\r\ndata"), "ended inside a part"),
        ("cut inside headers", "--abc\r\nContent-Disp".into(), "inside a part's headers"),
        ("no boundary at all", "just text".into(), "before the first boundary"),
        ("no disposition", "--abc\r\nX-A: b\r\n\r\nd\r\n--abc--".into(), "no Content-Disposition"),
        (
            "not form-data",
            "--abc\r\nContent-Disposition: inline\r\n\r\nd\r\n--abc--".into(),
            "form-data",
        ),
        (
            "junk after a boundary",
            format!("--abcjunk\r\n{cd}\r\nd\r\n--abc--"),
            "not followed by a line break",
        ),
        ("too many header lines", many_lines, "more than 32 header lines"),
        ("headers too long", long_headers, "65536 bytes"),
    ];
    for (what, body, expected) in
        cases.into_iter().chain([("preamble", long_preamble, "65536 bytes")])
    {
        let err = ours(chunks(body.as_bytes(), &[9, 1000, 40_000]), "abc").unwrap_err();
        assert!(err.to_string().contains(expected), "{what}: {err}");
    }
}

#[test]
fn the_boundary_comes_from_the_content_type() {
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        boundary(&headers).map_err(|e| e.to_string())
    };
    assert_eq!(with("multipart/form-data; boundary=abc").unwrap(), "abc");
    assert_eq!(with("multipart/form-data; boundary=\"a b:c\"").unwrap(), "a b:c");
    assert!(with("multipart/form-data").unwrap_err().contains("no boundary"));
    let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
    assert!(with(&long).unwrap_err().contains("1 to 70"));
}
