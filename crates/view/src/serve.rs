//! `netfence serve`: the page served live on a small blocking HTTP server (`tiny_http`: one
//! thread, no async runtime; the engine answers a query in microseconds).
//!
//! Routes: `GET /` the page; `GET /api/data` its data; `GET /api/query?from=&to=&port=` one
//! connection explained, as `netfence query -o json` prints it (the caller supplies the
//! answer, so the CLI's endpoint resolution and JSON are the only ones); `POST /api/what-if`
//! the reachability delta of a change, as `netfence what-if -o json` prints it (the caller
//! supplies that answer too, and its bytes are sent unchanged). The request body holds the
//! manifests to create or replace (YAML or JSON, as a file given to `--apply`; it may be
//! empty) and the query string the objects to delete, `?delete=KIND/ns/name` (repeatable, or
//! comma-separated). A what-if is a preview: the server never changes its cluster, so the
//! page and every later answer stay those of the inputs it was started with.
//!
//! Protections: requests whose `Host` is not the address listened on, `localhost` or a
//! loopback address (any address literal when bound to `0.0.0.0`) are refused (421), so a web
//! page elsewhere cannot reach the server through DNS rebinding; a `POST` whose `Origin` is
//! not the server's own is refused (403); `/api/what-if` takes only `POST` and every other
//! route only `GET` and `HEAD` (405); a body over [`MAX_BODY`] bytes is refused (413).

use std::io::{Cursor, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response, Server};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {message}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why.
        message: String,
    },
    /// Receiving a request failed.
    #[error("receiving a request: {0}")]
    Receive(#[from] std::io::Error),
}

/// What the query endpoint was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest {
    /// `--from` of `netfence query`.
    pub from: String,
    /// `--to`.
    pub to: String,
    /// `--port` (`PROTO/PORT`).
    pub port: String,
}

/// Answers a query: the JSON `netfence query -o json` prints, or an error message (a bad
/// endpoint or port), answered with status 400.
pub type QueryHandler<'a> = dyn Fn(&QueryRequest) -> Result<serde_json::Value, String> + 'a;

/// What the what-if endpoint was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatIfRequest {
    /// The request body: manifests to create or replace (`--apply` of `netfence what-if`).
    pub manifests: String,
    /// The objects to delete, as given (`--delete KIND/NS/NAME`).
    pub deletions: Vec<String>,
}

/// Answers a what-if: the bytes `netfence what-if -o json` prints, or an error message (bad
/// manifests, a kind that cannot be applied, a deletion naming no object), answered with
/// status 400.
pub type WhatIfHandler<'a> = dyn Fn(&WhatIfRequest) -> Result<Vec<u8>, String> + 'a;

/// The live answers the caller supplies.
pub struct Handlers<'a> {
    /// `GET /api/query`.
    pub query: &'a QueryHandler<'a>,
    /// `POST /api/what-if`.
    pub what_if: &'a WhatIfHandler<'a>,
}

/// The largest request body taken (1 MiB); larger ones are answered 413.
pub const MAX_BODY: usize = 1 << 20;

/// A bound server.
pub struct Live {
    server: Server,
    address: SocketAddr,
}

/// Bind `address` (`127.0.0.1:8080`; port 0 picks a free one).
pub fn bind(address: &str) -> Result<Live, ServeError> {
    let server = Server::http(address).map_err(|e| ServeError::Bind {
        address: address.to_string(),
        message: e.to_string(),
    })?;
    let address = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| ServeError::Bind {
            address: address.to_string(),
            message: "not an IP address".to_string(),
        })?;
    Ok(Live { server, address })
}

impl Live {
    /// The address listened on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serve until `stop` is set (checked every 200 ms).
    pub fn run(
        &self,
        page: &str,
        data: &str,
        handlers: &Handlers<'_>,
        stop: &AtomicBool,
    ) -> Result<(), ServeError> {
        while !stop.load(Ordering::Relaxed) {
            let Some(mut request) = self.server.recv_timeout(Duration::from_millis(200))? else {
                continue;
            };
            let response = self.answer(&mut request, page, data, handlers);
            // A client that went away is not the server's failure.
            let _ = request.respond(response);
        }
        Ok(())
    }

    fn host_allowed(&self, request: &Request) -> bool {
        let Some(host) = header_value(request, "Host") else {
            // HTTP/1.0 clients may omit Host; they cannot be rebound.
            return true;
        };
        self.host_is_ours(&host)
    }

    /// Whether `host` (`name:port`, lowercase) names this server.
    fn host_is_ours(&self, host: &str) -> bool {
        let port = self.address.port();
        let mut allowed = vec![
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
            self.address.to_string(),
        ];
        if port == 80 {
            allowed.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
        }
        // Bound to every address (`0.0.0.0`): any address literal on our port (an address is
        // no name a rebinding attack can repoint).
        let literal = host
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.port() == port && self.address.ip().is_unspecified());
        literal || allowed.iter().any(|a| a == host)
    }

    /// A POST from a page of another origin (a browser always sends `Origin` on POST) is
    /// refused: a cross-site form could otherwise make the server work for it.
    fn origin_allowed(&self, request: &Request) -> bool {
        match header_value(request, "Origin") {
            None => true,
            Some(origin) => origin
                .strip_prefix("http://")
                .is_some_and(|host| self.host_is_ours(host)),
        }
    }

    fn answer(
        &self,
        request: &mut Request,
        page: &str,
        data: &str,
        handlers: &Handlers<'_>,
    ) -> Response<Cursor<Vec<u8>>> {
        if !self.host_allowed(request) {
            return json(421, &serde_json::json!({"error": "unexpected Host header"}));
        }
        let url = request.url().to_string();
        let (path, query_string) = url.split_once('?').unwrap_or((&url, ""));
        let read = matches!(request.method(), Method::Get | Method::Head);
        match path {
            "/api/what-if" if *request.method() != Method::Post => json(
                405,
                &serde_json::json!({"error": "what-if takes POST (the manifests in the body)"}),
            ),
            "/api/what-if" if !self.origin_allowed(request) => json(
                403,
                &serde_json::json!({"error": "what-if from another origin"}),
            ),
            "/api/what-if" => what_if(request, query_string, handlers.what_if),
            _ if !read => json(
                405,
                &serde_json::json!({"error": "read-only: only GET and HEAD"}),
            ),
            "/" | "/index.html" => body(200, "text/html; charset=utf-8", page.as_bytes()),
            "/api/data" => body(200, "application/json", data.as_bytes()),
            "/api/query" => {
                let fields = form(query_string);
                let get = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let asked = QueryRequest {
                    from: get("from"),
                    to: get("to"),
                    port: get("port"),
                };
                match (handlers.query)(&asked) {
                    Ok(value) => json(200, &value),
                    Err(message) => json(400, &serde_json::json!({"error": message})),
                }
            }
            _ => json(404, &serde_json::json!({"error": "not found"})),
        }
    }
}

/// A header's value, lowercase.
fn header_value(request: &Request, name: &'static str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_ascii_lowercase())
}

/// `POST /api/what-if`: the body (at most [`MAX_BODY`] bytes, UTF-8) and the deletions of the
/// query string, answered by `handler`.
fn what_if(
    request: &mut Request,
    query_string: &str,
    handler: &WhatIfHandler<'_>,
) -> Response<Cursor<Vec<u8>>> {
    let too_large = || {
        json(
            413,
            &serde_json::json!({"error": format!("the request body is over {MAX_BODY} bytes")}),
        )
    };
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return too_large();
    }
    // Chunked bodies have no length up front: read one byte past the limit to tell.
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_BODY)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    if let Err(e) = request.as_reader().take(limit).read_to_end(&mut bytes) {
        return json(
            400,
            &serde_json::json!({"error": format!("reading the request body: {e}")}),
        );
    }
    if bytes.len() > MAX_BODY {
        return too_large();
    }
    let Ok(manifests) = String::from_utf8(bytes) else {
        return json(
            400,
            &serde_json::json!({"error": "the request body is not UTF-8"}),
        );
    };
    let deletions = form(query_string)
        .into_iter()
        .filter(|(k, _)| k == "delete")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let asked = WhatIfRequest {
        manifests,
        deletions,
    };
    match handler(&asked) {
        Ok(answer) => body(200, "application/json", &answer),
        Err(message) => json(400, &serde_json::json!({"error": message})),
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn body(status: u16, content_type: &str, bytes: &[u8]) -> Response<Cursor<Vec<u8>>> {
    let mut response = Response::from_data(bytes.to_vec()).with_status_code(status);
    for h in [
        header("Content-Type", content_type),
        header("Cache-Control", "no-store"),
        header("X-Content-Type-Options", "nosniff"),
    ]
    .into_iter()
    .flatten()
    {
        response.add_header(h);
    }
    response
}

fn json(status: u16, value: &serde_json::Value) -> Response<Cursor<Vec<u8>>> {
    body(status, "application/json", value.to_string().as_bytes())
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte).
pub fn form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decodes_plus_and_percent() {
        assert_eq!(
            form("from=shop%2Fweb&to=a+b&port=TCP%2F80&bad=%zz&x"),
            vec![
                ("from".to_string(), "shop/web".to_string()),
                ("to".to_string(), "a b".to_string()),
                ("port".to_string(), "TCP/80".to_string()),
                ("bad".to_string(), "%zz".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert_eq!(form("a=%4"), vec![("a".to_string(), "%4".to_string())]);
    }
}
