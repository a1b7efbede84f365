//! A `multipart/form-data` body (RFC 7578) split into its parts, without
//! copying: a part's bytes are handed on as slices of the chunks the
//! network delivered. Only a chunk that follows a possible beginning of a
//! delimiter, or of a part's headers, is copied (joined to it).
//!
//! It replaces actix-multipart on the upload path, which copies every byte
//! into a buffer of its own and stops at each `\r` to look for a boundary;
//! that was a sixth of the service's CPU on a multipart upload
//! (BENCHMARKS.md, "Upload CPU work").

use actix_web::error::PayloadError;
use actix_web::http::header::{ContentDisposition, HeaderMap, HeaderName, HeaderValue};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt, stream};
use memchr::memmem::Finder;

use crate::error::BodyError;

/// The most a part's headers, or the text before the first boundary, may take.
pub(crate) const MAX_HEADERS: usize = 64 * 1024;
/// The most header lines a part may have.
const MAX_HEADER_LINES: usize = 32;

/// The boundary of a `multipart/form-data` content type.
///
/// # Errors
/// [`BodyError::Malformed`] if it has none, or one RFC 2046 does not allow.
pub(crate) fn boundary(headers: &HeaderMap) -> Result<String, BodyError> {
    let malformed = |why: &str| BodyError::Malformed(why.to_owned());
    let content_type = headers
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .ok_or_else(|| malformed("the Content-Type header cannot be parsed"))?;
    let boundary = content_type
        .get_param(mime::BOUNDARY)
        .ok_or_else(|| malformed("the Content-Type header has no boundary"))?
        .as_str();
    if !(1..=70).contains(&boundary.len()) {
        return Err(malformed("the boundary must be 1 to 70 characters long"));
    }
    Ok(boundary.to_owned())
}

/// What a part's headers say.
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) disposition: ContentDisposition,
    pub(crate) content_type: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just past a delimiter: the last one (`--`), or a part's headers next.
    Delimiter,
    Headers,
    /// In a part's bytes.
    Body,
    End,
}

/// The parts of one body, read in order: [`next_part`](Self::next_part),
/// then that part's bytes from [`body`](Self::body).
pub(crate) struct Multipart<S> {
    input: S,
    /// `\r\n--boundary`, which ends every part.
    delimiter: Finder<'static>,
    /// Bytes received and not yet handed on: the rest of the last chunk,
    /// which parts' bytes are sliced from.
    buf: Bytes,
    state: State,
}

impl<S> Multipart<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    pub(crate) fn new(input: S, boundary: &str) -> Self {
        let delimiter = Finder::new(format!("\r\n--{boundary}").as_bytes()).into_owned();
        Self { input, delimiter, buf: Bytes::new(), state: State::Preamble }
    }

    /// The next part's headers; `None` after the last part. Whatever is
    /// left of the part before is skipped.
    ///
    /// # Errors
    /// The body's error; [`BodyError::Malformed`], [`BodyError::PartHeadersTooLarge`]
    /// or [`BodyError::Incomplete`] for a body that is not multipart as declared.
    pub(crate) async fn next_part(&mut self) -> Result<Option<Part>, BodyError> {
        loop {
            match self.state {
                State::Body => while self.next_chunk().await?.is_some() {},
                State::Preamble => self.skip_preamble().await?,
                State::Delimiter => self.after_delimiter().await?,
                State::Headers => return self.headers().await.map(Some),
                State::End => return Ok(None),
            }
        }
    }

    /// The current part's bytes, as they arrive.
    pub(crate) fn body(&mut self) -> impl Stream<Item = Result<Bytes, BodyError>> + '_ {
        stream::unfold(self, |this| async move {
            this.next_chunk().await.transpose().map(|item| (item, this))
        })
    }

    /// The next piece of the current part; `None` at its end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        while self.state == State::Body {
            if let Some(end) = self.delimiter.find(&self.buf) {
                let data = self.buf.split_to(end);
                self.buf.advance(self.delimiter.needle().len());
                self.state = State::Delimiter;
                return Ok((!data.is_empty()).then_some(data));
            }
            // All but an end that may begin the delimiter (rarely any) is the part's.
            let ready = self.buf.len() - self.open_prefix(&self.buf);
            if ready > 0 {
                return Ok(Some(self.buf.split_to(ready)));
            }
            self.fill("inside a part").await?;
        }
        Ok(None)
    }

    /// The length of the longest end of `data` that begins the delimiter.
    fn open_prefix(&self, data: &[u8]) -> usize {
        let needle = self.delimiter.needle();
        let from = data.len().saturating_sub(needle.len() - 1);
        memchr::memchr_iter(b'\r', &data[from..])
            .map(|i| from + i)
            .find(|&i| needle.starts_with(&data[i..]))
            .map_or(0, |i| data.len() - i)
    }

    /// Skips to just past the first delimiter (which may open the body without its `\r\n`).
    async fn skip_preamble(&mut self) -> Result<(), BodyError> {
        let needle_len = self.delimiter.needle().len();
        loop {
            let first = &self.delimiter.needle()[2..];
            if self.buf.starts_with(first) {
                self.buf.advance(first.len());
                break;
            }
            if let Some(at) = self.delimiter.find(&self.buf).filter(|&at| at <= MAX_HEADERS) {
                self.buf.advance(at + needle_len);
                break;
            }
            if self.buf.len() > MAX_HEADERS {
                return Err(BodyError::PartHeadersTooLarge);
            }
            self.fill("before the first boundary").await?;
        }
        self.state = State::Delimiter;
        Ok(())
    }

    /// After a delimiter: `--` ends the body; else optional spaces and a line break.
    async fn after_delimiter(&mut self) -> Result<(), BodyError> {
        loop {
            if self.buf.starts_with(b"--") {
                self.state = State::End;
                return Ok(());
            }
            let padding = self.buf.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
            match self.buf.get(padding..padding + 2) {
                Some(b"\r\n") => {
                    self.buf.advance(padding + 2);
                    self.state = State::Headers;
                    return Ok(());
                }
                Some(_) => return Err(malformed("a boundary is not followed by a line break")),
                None if self.buf.len() > MAX_HEADERS => return Err(BodyError::PartHeadersTooLarge),
                None => self.fill("after a boundary").await?,
            }
        }
    }

    async fn headers(&mut self) -> Result<Part, BodyError> {
        let end = loop {
            if self.buf.starts_with(b"\r\n") {
                break 2; // no headers at all
            }
            if let Some(at) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buf.len() > MAX_HEADERS {
                return Err(BodyError::PartHeadersTooLarge);
            }
            self.fill("inside a part's headers").await?;
        };
        if end > MAX_HEADERS {
            return Err(BodyError::PartHeadersTooLarge);
        }
        let mut lines = [httparse::EMPTY_HEADER; MAX_HEADER_LINES];
        let part = match httparse::parse_headers(&self.buf[..end], &mut lines) {
            Ok(httparse::Status::Complete((_, lines))) => part(lines)?,
            Ok(httparse::Status::Partial) => {
                return Err(malformed("a part's headers are cut short"));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(malformed(&format!(
                    "a part has more than {MAX_HEADER_LINES} header lines"
                )));
            }
            Err(e) => return Err(malformed(&format!("a part's headers: {e}"))),
        };
        self.buf.advance(end);
        self.state = State::Body;
        Ok(part)
    }

    /// Adds the next chunk to `buf`: the chunk itself when `buf` is empty
    /// (the common case), else a copy of both.
    async fn fill(&mut self, place: &str) -> Result<(), BodyError> {
        let chunk = self.read().await?.ok_or_else(|| incomplete(place))?;
        if self.buf.is_empty() {
            self.buf = chunk;
        } else {
            let mut joined = BytesMut::with_capacity(self.buf.len() + chunk.len());
            joined.extend_from_slice(&self.buf);
            joined.extend_from_slice(&chunk);
            self.buf = joined.freeze();
        }
        Ok(())
    }

    async fn read(&mut self) -> Result<Option<Bytes>, BodyError> {
        self.input.next().await.transpose().map_err(BodyError::from_payload)
    }
}

fn part(lines: &[httparse::Header<'_>]) -> Result<Part, BodyError> {
    let mut disposition = None;
    let mut content_type = None;
    for line in lines {
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(line.name.as_bytes()), HeaderValue::from_bytes(line.value))
        else {
            return Err(malformed("a part has an invalid header"));
        };
        if name == actix_web::http::header::CONTENT_DISPOSITION {
            let parsed = ContentDisposition::from_raw(&value)
                .map_err(|_| malformed("a part's Content-Disposition cannot be parsed"))?;
            if !parsed.is_form_data() || parsed.get_name().is_none() {
                return Err(malformed(
                    "a part's Content-Disposition must be form-data with a name",
                ));
            }
            disposition = Some(parsed);
        } else if name == actix_web::http::header::CONTENT_TYPE {
            content_type = value.to_str().ok().and_then(|v| v.parse::<mime::Mime>().ok());
        }
    }
    let disposition =
        disposition.ok_or_else(|| malformed("a part has no Content-Disposition header"))?;
    Ok(Part { disposition, content_type: content_type.map(|m| m.to_string()) })
}

fn malformed(why: &str) -> BodyError {
    BodyError::Malformed(why.to_owned())
}

fn incomplete(place: &str) -> BodyError {
    BodyError::Incomplete(format!("the body ended {place}"))
}

#[cfg(test)]
mod tests;
