//! A small blocking HTTP/1.1 client, one request per connection: the URL of a service, opening
//! a connection (TCP, then TLS), writing a request whose body is streamed, and reading an
//! answer with every size bounded. `read_response` is fuzzed (`fuzz/fuzz_targets/http_response.rs`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};
use crate::protocol::MAX_RESPONSE_LEN;

/// The largest answer head (status line and headers).
pub(crate) const MAX_HEAD_LEN: usize = 16 * 1024;
/// The most headers an answer may have.
const MAX_HEADERS: usize = 64;
/// The most informational (1xx) answers skipped before the final one.
const MAX_INTERIM: usize = 4;

/// Where a service is: scheme, host, port and the path prefix every endpoint goes under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) prefix: String,
}

fn invalid_url(url: &str, why: &str) -> Error {
    Error::invalid(format!("the service URL {url:?} {why}"))
}

impl Endpoint {
    /// Parses `https://host[:port][/prefix]` (or `http://` for a loopback host only).
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(invalid_url(url, "must start with https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid_url(url, "may not have a query, a fragment or spaces"));
        }
        if authority.contains('@') {
            return Err(invalid_url(url, "may not carry credentials (pass the token as an option)"));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| invalid_url(url, "has an unclosed [IPv6 address]"))?;
            let host = &r[..end];
            host.parse::<std::net::Ipv6Addr>().map_err(|_| invalid_url(url, "has a malformed IPv6 address"))?;
            (host, &r[end + 1..])
        } else {
            match authority.rfind(':') {
                Some(i) => (&authority[..i], &authority[i..]),
                None => (authority, ""),
            }
        };
        let port = match port {
            "" => {
                if tls {
                    443
                } else {
                    80
                }
            }
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid_url(url, "has a malformed port"))?,
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        {
            return Err(invalid_url(url, "has a malformed host"));
        }
        let endpoint =
            Endpoint { tls, host: host.to_ascii_lowercase(), port, prefix: path.trim_end_matches('/').to_string() };
        if !tls && !endpoint.is_loopback() {
            return Err(invalid_url(url, "uses plain http, which is only allowed for a loopback address"));
        }
        Ok(endpoint)
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The `Host` header's value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

/// A reader that fails with `TimedOut` once `limit` has passed since its first byte.
pub(crate) struct Deadline<'a, R> {
    inner: &'a mut R,
    first: Option<std::time::Instant>,
    limit: Duration,
}

impl<'a, R> Deadline<'a, R> {
    pub(crate) fn new(inner: &'a mut R, limit: Duration) -> Self {
        Deadline { inner, first: None, limit }
    }
}

impl<R: Read> Read for Deadline<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.first.is_some_and(|t| t.elapsed() > self.limit) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the answer took too long"));
        }
        let n = self.inner.read(buf)?;
        if n > 0 && self.first.is_none() {
            self.first = Some(std::time::Instant::now());
        }
        Ok(n)
    }
}

/// How a request failed, for the retry logic.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth trying again (no connection, dropped, timed out, an overloaded service); the
    /// delay the service asked for, if it did.
    Transient(Error, Option<Duration>),
    /// Final: trying again would give the same.
    Final(crate::service::ServiceError),
}

impl Failure {
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Failure::Transient(Error::new(ErrorCode::ServiceUnavailable, message), None)
    }

    pub(crate) fn fatal(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure::Final(Error::new(code, message).into())
    }
}

/// What happened to an I/O call on the connection, as a failure.
pub(crate) fn io_failure(what: &str, e: &io::Error) -> Failure {
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return tls_failure(tls);
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            Failure::unavailable(format!("the License Management Service did not answer in time ({what})"))
        }
        _ => Failure::unavailable(format!("the connection to the License Management Service failed ({what}): {e}")),
    }
}

fn tls_failure(e: &rustls::Error) -> Failure {
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented | rustls::Error::General(_) => {
            Failure::fatal(
                ErrorCode::ServiceNotTrusted,
                format!("the License Management Service's certificate is not trusted: {e}"),
            )
        }
        _ => Failure::fatal(
            ErrorCode::ServiceUnavailable,
            format!("TLS with the License Management Service failed: {e}"),
        ),
    }
}

/// An open connection: a socket, with TLS or without.
pub(crate) enum Connection {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Plain(s) => s.read(buf),
            Connection::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Plain(s) => s.write(buf),
            Connection::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Connection::Plain(s) => s.flush(),
            Connection::Tls(s) => s.flush(),
        }
    }
}

impl Connection {
    /// Connects to `endpoint` (each address in turn, `timeout` each), with TLS when the
    /// endpoint says so: the handshake completes here, so a certificate that does not verify
    /// fails before anything is sent. Every later read and write times out after `timeout`.
    pub(crate) fn open(
        endpoint: &Endpoint,
        tls: Option<&Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> std::result::Result<Self, Failure> {
        let addrs: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
            .to_socket_addrs()
            .map_err(|e| Failure::unavailable(format!("cannot resolve {}: {e}", endpoint.host)))?
            .collect();
        let mut last = None;
        let mut socket = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(s) => {
                    socket = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let socket = socket.ok_or_else(|| match last {
            Some(e) => io_failure(&format!("connecting to {}:{}", endpoint.host, endpoint.port), &e),
            None => Failure::unavailable(format!("{} has no address", endpoint.host)),
        })?;
        let setup = |s: &TcpStream| -> io::Result<()> {
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            s.set_nodelay(true)
        };
        setup(&socket).map_err(|e| io_failure("configuring the socket", &e))?;
        let Some(config) = tls.filter(|_| endpoint.tls) else {
            return Ok(Connection::Plain(socket));
        };
        let name = match endpoint.host.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
            Err(_) => rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                .map_err(|_| Failure::fatal(ErrorCode::InvalidArgument, "the service host is not a valid name"))?,
        };
        let conn = rustls::ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| Failure::fatal(ErrorCode::Internal, format!("cannot start TLS: {e}")))?;
        let mut stream = rustls::StreamOwned::new(conn, socket);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).map_err(|e| io_failure("the TLS handshake", &e))?;
        }
        Ok(Connection::Tls(Box::new(stream)))
    }

    /// Closes the connection (TLS close_notify, then the socket), ignoring errors.
    pub(crate) fn close(self) {
        match self {
            Connection::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            Connection::Tls(mut s) => {
                s.conn.send_close_notify();
                let _ = s.conn.complete_io(&mut s.sock);
                let _ = s.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// The head of a request: method, path, headers and the body's length.
pub(crate) fn request_head(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body_len: u64,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: license-backup/{}\r\nAccept: application/json\r\nConnection: close\r\n",
        endpoint.prefix,
        endpoint.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if body_len > 0 || method != "GET" {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// An answer, read whole.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code (never 1xx).
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Retry-After` header in seconds, if any and numeric.
    pub retry_after: Option<u64>,
    /// The body (at most [`MAX_RESPONSE_LEN`] bytes).
    pub body: Vec<u8>,
}

fn malformed(message: impl Into<String>) -> Failure {
    Failure::fatal(
        ErrorCode::ProtocolViolation,
        format!("malformed answer from the License Management Service: {}", message.into()),
    )
}

/// Reads one answer from `r`: the head (skipping informational answers), then the body by
/// `Content-Length`, chunked, or up to the end of the connection, each at most
/// [`MAX_RESPONSE_LEN`] bytes. A connection that ends or fails before the answer is whole is a
/// transient failure (the service may not have seen the request); anything malformed is final.
pub(crate) fn read_response(r: &mut impl Read) -> std::result::Result<Response, Failure> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    for _ in 0..=MAX_INTERIM {
        let (head_len, status, content_type, retry_after, framing) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut res = httparse::Response::new(&mut headers);
            match res.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = res.code.ok_or_else(|| malformed("no status"))?;
                    let (ct, ra, framing) = answer_headers(res.headers)?;
                    break (n, status, ct, ra, framing);
                }
                Ok(httparse::Status::Partial) => {
                    if buf.len() >= MAX_HEAD_LEN {
                        return Err(malformed(format!("the answer's head is longer than {MAX_HEAD_LEN} bytes")));
                    }
                    if fill(r, &mut buf, MAX_HEAD_LEN)? == 0 {
                        return Err(Failure::unavailable(
                            "the License Management Service closed the connection before answering",
                        ));
                    }
                }
                Err(e) => return Err(malformed(e.to_string())),
            }
        };
        buf.drain(..head_len);
        if (100..200).contains(&status) {
            if status == 101 {
                return Err(malformed("an unexpected protocol switch"));
            }
            continue;
        }
        let body = match framing {
            Framing::Length(n) => {
                if n > MAX_RESPONSE_LEN as u64 {
                    return Err(malformed(format!("a body of {n} bytes")));
                }
                let n = n as usize;
                while buf.len() < n {
                    if fill(r, &mut buf, n)? == 0 {
                        return Err(Failure::unavailable("the connection ended inside the answer"));
                    }
                }
                if buf.len() > n {
                    return Err(malformed("bytes after the answer"));
                }
                buf
            }
            Framing::Chunked => read_chunked(r, buf)?,
            Framing::Close => {
                while fill(r, &mut buf, MAX_RESPONSE_LEN + 1)? > 0 {
                    if buf.len() > MAX_RESPONSE_LEN {
                        return Err(malformed(format!("a body over {MAX_RESPONSE_LEN} bytes")));
                    }
                }
                buf
            }
        };
        return Ok(Response { status, content_type, retry_after, body });
    }
    Err(malformed("too many informational answers"))
}

enum Framing {
    Length(u64),
    Chunked,
    Close,
}

type AnswerHeaders = (Option<String>, Option<u64>, Framing);

fn answer_headers(headers: &[httparse::Header<'_>]) -> std::result::Result<AnswerHeaders, Failure> {
    let (mut content_type, mut retry_after, mut length, mut chunked) = (None, None, None, false);
    for h in headers {
        let value = std::str::from_utf8(h.value).map_err(|_| malformed("a header value is not UTF-8"))?.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| malformed("a malformed Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(malformed("two different Content-Length headers"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(malformed(format!("transfer encoding {value:?}")));
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.chars().take(256).collect());
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after = value.parse().ok();
        }
    }
    let framing = match (length, chunked) {
        (Some(_), true) => return Err(malformed("both Content-Length and chunked")),
        (Some(n), false) => Framing::Length(n),
        (None, true) => Framing::Chunked,
        (None, false) => Framing::Close,
    };
    Ok((content_type, retry_after, framing))
}

/// Reads more bytes into `buf` (at most `limit` in all); returns how many (0: the end).
fn fill(r: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> std::result::Result<usize, Failure> {
    let mut chunk = [0u8; 8192];
    let want = limit.saturating_sub(buf.len()).clamp(1, chunk.len());
    loop {
        match r.read(&mut chunk[..want]) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A peer that closes without TLS close_notify: the end of the answer.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(io_failure("reading the answer", &e)),
        }
    }
}

/// Decodes a chunked body whose first bytes are `buf`.
fn read_chunked(r: &mut impl Read, mut buf: Vec<u8>) -> std::result::Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    let line = |r: &mut _, buf: &mut Vec<u8>| -> std::result::Result<Vec<u8>, Failure> {
        loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                let line = buf[..i].to_vec();
                buf.drain(..i + 2);
                return Ok(line);
            }
            if buf.len() > 1024 {
                return Err(malformed("a chunk line longer than 1 KiB"));
            }
            if fill(r, buf, buf.len() + 1024)? == 0 {
                return Err(Failure::unavailable("the connection ended inside the answer"));
            }
        }
    };
    loop {
        let size_line = line(r, &mut buf)?;
        let size_text = std::str::from_utf8(&size_line).map_err(|_| malformed("a chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        if size_text.is_empty() || size_text.len() > 8 {
            return Err(malformed("a chunk size"));
        }
        let size = usize::from_str_radix(size_text, 16).map_err(|_| malformed("a chunk size"))?;
        if size == 0 {
            // Trailer fields, up to the empty line.
            for _ in 0..MAX_HEADERS {
                if line(r, &mut buf)?.is_empty() {
                    if !buf.is_empty() {
                        return Err(malformed("bytes after the answer"));
                    }
                    return Ok(body);
                }
            }
            return Err(malformed("too many trailer fields"));
        }
        if body.len() + size > MAX_RESPONSE_LEN {
            return Err(malformed(format!("a body over {MAX_RESPONSE_LEN} bytes")));
        }
        while buf.len() < size + 2 {
            if fill(r, &mut buf, size + 2)? == 0 {
                return Err(Failure::unavailable("the connection ended inside the answer"));
            }
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err(malformed("a chunk without its line end"));
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

/// Parses `bytes` as one whole answer, as the client reads it from a connection: for the
/// fuzzer and the tests. `Ok` holds the answer; `Err` the stable code of the failure.
pub fn parse_response_bytes(bytes: &[u8]) -> std::result::Result<Response, ErrorCode> {
    let mut r = bytes;
    read_response(&mut r).map_err(|f| match f {
        Failure::Transient(e, _) => e.code(),
        Failure::Final(crate::service::ServiceError::Failed(e)) => e.code(),
        Failure::Final(crate::service::ServiceError::Refused(r)) => r.code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("https://licenses.example.com").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port, e.prefix.as_str()), (true, "licenses.example.com", 443, ""));
        let e = Endpoint::parse("https://Example.com:8443/lms/").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.prefix.as_str()), ("example.com", 8443, "/lms"));
        assert_eq!(e.host_header(), "example.com:8443");
        let e = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        assert!(!e.tls);
        let e = Endpoint::parse("https://[::1]:9000/x").unwrap();
        assert_eq!((e.host.as_str(), e.host_header().as_str()), ("::1", "[::1]:9000"));
        for bad in [
            "ftp://x",
            "http://example.com",
            "https://",
            "https://a:b@example.com",
            "https://example.com:0",
            "https://example.com:99999",
            "https://example.com/?q",
            "https://exa mple.com",
            "https://example.com/a b",
            "https://[::1",
            "example.com",
        ] {
            assert_eq!(Endpoint::parse(bad).unwrap_err().code(), ErrorCode::InvalidArgument, "{bad}");
        }
    }

    fn code(bytes: &[u8]) -> ErrorCode {
        parse_response_bytes(bytes).unwrap_err()
    }

    #[test]
    fn answers() {
        let r =
            parse_response_bytes(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
        assert_eq!(
            (r.status, r.content_type.as_deref(), r.body.as_slice()),
            (200, Some("application/json"), &b"{}"[..])
        );
        let r = parse_response_bytes(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 No\r\nRetry-After: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.retry_after, r.body.as_slice()), (503, Some(3), &b"abcde"[..]));
        let r = parse_response_bytes(b"HTTP/1.1 200 OK\r\n\r\nuntil the end").unwrap();
        assert_eq!(r.body, b"until the end");
    }

    #[test]
    fn hostile_answers() {
        // Cut short: transient (the service may not have seen the request).
        assert_eq!(code(b""), ErrorCode::ServiceUnavailable);
        assert_eq!(code(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"), ErrorCode::ServiceUnavailable);
        assert_eq!(
            code(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
            ErrorCode::ServiceUnavailable
        );
        // Malformed or oversized: final.
        let big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_RESPONSE_LEN + 1);
        assert_eq!(code(big.as_bytes()), ErrorCode::ProtocolViolation);
        let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        endless.resize(endless.len() + MAX_RESPONSE_LEN + 10, b'x');
        assert_eq!(code(&endless), ErrorCode::ProtocolViolation);
        let mut long_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long_head.resize(MAX_HEAD_LEN + 10, b'a');
        assert_eq!(code(&long_head), ErrorCode::ProtocolViolation);
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",
            b"HTTP/1.1 101 Switching\r\n\r\n",
            b"HTTP/1.1 100 A\r\n\r\nHTTP/1.1 100 A\r\n\r\nHTTP/1.1 100 A\r\n\r\nHTTP/1.1 100 A\r\n\r\nHTTP/1.1 100 A\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        ] {
            assert_eq!(code(bad), ErrorCode::ProtocolViolation, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
