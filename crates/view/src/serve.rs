//! `netfence serve`: the page served live, read-only, on a small blocking HTTP server
//! (`tiny_http`: one thread, no async runtime; the engine answers a query in microseconds).
//!
//! Routes: `GET /` the page; `GET /api/data` its data; `GET /api/query?from=&to=&port=` one
//! connection explained, as `netfence query -o json` prints it (the caller supplies the
//! answer, so the CLI's endpoint resolution and JSON are the only ones); `/api/what-if`
//! answers 501 (the reachability delta needs the incremental engine, not available yet).
//! Nothing writes: other methods get 405. Requests whose `Host` is not the address listened
//! on, `localhost` or a loopback address (any address literal when bound to `0.0.0.0`) are
//! refused (421), so a web page elsewhere cannot reach the server through DNS rebinding.

//!
//! The what-if slot, for when the incremental engine lands: `POST /api/what-if` with a body of
//! YAML documents to create or replace and `?delete=KIND/ns/name,…`, answered with the JSON of
//! `netfence what-if -o json` (diff lines: `source`, `destination`, `diff-type`, `ref1`,
//! `ref2`); the page's "What if" box (disabled until [`crate::data::ViewData::what_if`] is
//! true) would post the pasted policy and draw added edges and removed edges over the graph
//! before anything is applied. Until then the route answers 501 and the box says why.

use std::io::Cursor;
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

/// The message `/api/what-if` answers with.
pub const WHAT_IF_UNAVAILABLE: &str = "what-if needs the incremental engine (Engine::apply, `netfence what-if`), which this build does not have yet";

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
        query: &QueryHandler<'_>,
        stop: &AtomicBool,
    ) -> Result<(), ServeError> {
        while !stop.load(Ordering::Relaxed) {
            let Some(request) = self.server.recv_timeout(Duration::from_millis(200))? else {
                continue;
            };
            let response = self.answer(&request, page, data, query);
            // A client that went away is not the server's failure.
            let _ = request.respond(response);
        }
        Ok(())
    }

    fn host_allowed(&self, request: &Request) -> bool {
        let Some(host) = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Host"))
            .map(|h| h.value.as_str().to_ascii_lowercase())
        else {
            // HTTP/1.0 clients may omit Host; they cannot be rebound.
            return true;
        };
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
        literal || allowed.contains(&host)
    }

    fn answer(
        &self,
        request: &Request,
        page: &str,
        data: &str,
        query: &QueryHandler<'_>,
    ) -> Response<Cursor<Vec<u8>>> {
        if !self.host_allowed(request) {
            return json(421, &serde_json::json!({"error": "unexpected Host header"}));
        }
        let (path, query_string) = request.url().split_once('?').unwrap_or((request.url(), ""));
        let read = matches!(request.method(), Method::Get | Method::Head);
        match path {
            "/api/what-if" => json(501, &serde_json::json!({"error": WHAT_IF_UNAVAILABLE})),
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
                match query(&asked) {
                    Ok(value) => json(200, &value),
                    Err(message) => json(400, &serde_json::json!({"error": message})),
                }
            }
            _ => json(404, &serde_json::json!({"error": "not found"})),
        }
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
