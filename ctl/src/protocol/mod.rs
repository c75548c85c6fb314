//! The control protocol between xvsd and its clients: JSON-RPC 2.0 over a
//! Unix stream socket, one JSON object per line, typed on both sides.
//!
//! This module is the schema and nothing else (no I/O): the request and
//! response envelopes, the error codes, one typed [`Method`] per method with
//! its params, and the typed result rows. The field names of the result
//! types are the `xvsctl --format json` contract: they are snake_case and
//! only ever added to, never renamed, within one [`PROTOCOL_VERSION`].
//!
//! Framing: a request is one line (UTF-8 JSON, no raw newline inside, `\n`
//! at the end, at most [`MAX_REQUEST_BYTES`] before it); the answer is one
//! line too. Several requests may be sent on one connection, one after the
//! other; a connection that sends no complete request for
//! [`IDLE_TIMEOUT`] is closed.
//!
//! Parts: this file holds the envelopes, framing limits and error codes;
//! `method.rs` the methods and their params; `rows.rs` the results.
//! Everything is re-exported here, so users name `protocol::X` only.
//!
//! Departures from JSON-RPC 2.0, on purpose: every request must carry an
//! `id` (a notification would change the config without telling anyone
//! whether it was accepted) and batches (JSON arrays of requests) are not
//! accepted: `transact` already groups commands, atomically.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod method;
mod rows;

pub use method::*;
pub use rows::*;

/// The JSON-RPC version string every message carries.
pub const JSONRPC: &str = "2.0";

/// Bumped on any incompatible change (a method, param or field renamed,
/// removed or given another meaning). Additions do not bump it: clients
/// must ignore fields they do not know.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line, newline excluded. Big enough for a transaction of
/// about 10,000 FDB entries; larger batches are split by the client.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Longest response line a client reads: a full FDB dump of a million MACs
/// is about 100 MB.
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// A connection that delivers no complete request for this long after
/// connecting or after its previous answer is closed, so a client that
/// connects and never writes (or writes one byte a minute) cannot hold one
/// of the server's bounded connection slots forever.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where xvsd listens unless told otherwise (`--socket`).
pub const DEFAULT_SOCKET: &str = "/run/xvs/xvsd.sock";

/// Error codes: the JSON-RPC 2.0 standard ones, then ours (-32000..-32099
/// is the range the spec leaves to servers).
pub mod codes {
    /// The line is not JSON. Message carries serde_json's line and column.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a request object (missing `jsonrpc`/`id`/`method`,
    /// wrong types, unknown members, a batch array).
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method; the message lists the known ones.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Params of the wrong shape; `data.path` names the field.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A bug on the server side; the request may or may not have applied.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The request is well formed but refused: a transaction that does not
    /// validate (every problem in `data.problems`), an unknown port for
    /// `stats`, ... Nothing was changed.
    pub const REJECTED: i64 = -32000;
    /// The request line exceeds [`super::MAX_REQUEST_BYTES`]; the server
    /// closes the connection after this answer.
    pub const REQUEST_TOO_LARGE: i64 = -32001;
    /// The peer is neither root nor in the socket's group; closed after.
    pub const PERMISSION_DENIED: i64 = -32002;
    /// Too many connections, or the daemon's queue is full; closed after.
    pub const BUSY: i64 = -32003;
    /// The daemon did not answer in time. A `transact` may still commit
    /// after this answer: check with `show`.
    pub const TIMEOUT: i64 = -32004;
    /// The connection sent no complete request for the idle timeout.
    pub const IDLE: i64 = -32005;
}

/// A request or response id. JSON-RPC allows a number, a string or null;
/// null is what error responses carry when the request's id is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Number(i64),
    String(String),
    Null,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Number(n) => write!(f, "{n}"),
            Id::String(s) => write!(f, "{s:?}"),
            Id::Null => f.write_str("null"),
        }
    }
}

/// One request line: `{"jsonrpc":"2.0","id":1,"method":"show"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub jsonrpc: String,
    pub id: Id,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl Request {
    /// A request for `method` (its name and params).
    pub fn new(id: Id, method: &Method) -> Request {
        Request {
            jsonrpc: JSONRPC.to_string(),
            id,
            method: method.name().to_string(),
            params: method.params(),
        }
    }

    /// The typed method; see [`Method::from_request`].
    pub fn method(&self) -> Result<Method, RpcError> {
        Method::from_request(&self.method, self.params.as_ref())
    }
}

/// Parses one request line (without its newline). On error, the id to
/// answer with (the request's own if it could be read, else null) and the
/// error, whose message says what is wrong and where.
pub fn parse_request(line: &[u8]) -> Result<Request, (Id, RpcError)> {
    let v: Value =
        serde_json::from_slice(line).map_err(|e| (Id::Null, RpcError::parse_error(&e)))?;
    let Value::Object(mut obj) = v else {
        let what = match v {
            Value::Array(_) => "a JSON array (batches are not supported: send one request per line, or one transact with several commands)",
            _ => "not a JSON object",
        };
        return Err((
            Id::Null,
            RpcError::invalid_request(format!("the request is {what}")),
        ));
    };
    // Echo the id whenever it is usable, so the client can match the error.
    let id =
        match obj.get("id") {
            None => return Err((
                Id::Null,
                RpcError::invalid_request(
                    "missing \"id\" (notifications are not supported: every request is answered)",
                ),
            )),
            Some(v) => serde_json::from_value::<Id>(v.clone()).map_err(|_| {
                (
                    Id::Null,
                    RpcError::invalid_request(format!(
                        "\"id\" must be an integer, a string or null, not {}",
                        brief(v)
                    )),
                )
            })?,
        };
    let bad = |msg: String| (id.clone(), RpcError::invalid_request(msg));
    match obj.remove("jsonrpc") {
        Some(Value::String(s)) if s == JSONRPC => {}
        Some(v) => {
            return Err(bad(format!(
                "\"jsonrpc\" must be \"2.0\", not {}",
                brief(&v)
            )))
        }
        None => return Err(bad("missing \"jsonrpc\": \"2.0\"".into())),
    }
    let method = match obj.remove("method") {
        Some(Value::String(s)) => s,
        Some(v) => {
            return Err(bad(format!(
                "\"method\" must be a string, not {}",
                brief(&v)
            )))
        }
        None => return Err(bad("missing \"method\"".into())),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::Object(_) | Value::Array(_))) => Some(v),
        Some(v) => {
            return Err(bad(format!(
                "\"params\" must be an object or an array, not {}",
                brief(&v)
            )))
        }
    };
    obj.remove("id");
    if let Some(k) = obj.keys().next() {
        return Err(bad(format!(
            "unknown member {k:?} (a request has jsonrpc, id, method and params)"
        )));
    }
    Ok(Request {
        jsonrpc: JSONRPC.to_string(),
        id,
        method,
        params,
    })
}

/// A short description of a JSON value for error messages, never the
/// whole value (it may be megabytes).
fn brief(v: &Value) -> String {
    let s = match v {
        Value::Null => return "null".into(),
        Value::Bool(_) => return "a boolean".into(),
        Value::Array(_) => return "an array".into(),
        Value::Object(_) => return "an object".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
    };
    if s.len() > 40 {
        let cut = (0..=40).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

/// The error member of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }

    /// serde_json's message names the line and column.
    pub fn parse_error(e: &serde_json::Error) -> RpcError {
        RpcError::new(codes::PARSE_ERROR, format!("parse error: {e}"))
    }

    /// A parse error found by the framing rather than by serde.
    pub fn parse_error_text(msg: impl Into<String>) -> RpcError {
        RpcError::new(codes::PARSE_ERROR, format!("parse error: {}", msg.into()))
    }

    pub fn invalid_request(msg: impl Into<String>) -> RpcError {
        RpcError::new(
            codes::INVALID_REQUEST,
            format!("invalid request: {}", msg.into()),
        )
    }

    pub fn method_not_found(name: &str) -> RpcError {
        RpcError::new(
            codes::METHOD_NOT_FOUND,
            format!(
                "unknown method {:?} (known: {})",
                brief_str(name),
                Method::NAMES.join(", ")
            ),
        )
    }

    /// `path` is where in the params the problem is (`commands[2].mac`), or
    /// empty for the params as a whole.
    pub fn invalid_params(method: &str, path: &str, msg: impl fmt::Display) -> RpcError {
        let at = if path.is_empty() || path == "." {
            "params".to_string()
        } else {
            format!("params.{path}")
        };
        RpcError::new(
            codes::INVALID_PARAMS,
            format!("invalid params for {method}: {at}: {msg}"),
        )
        .with_data(serde_json::json!({ "path": at }))
    }

    pub fn internal(msg: impl Into<String>) -> RpcError {
        RpcError::new(
            codes::INTERNAL_ERROR,
            format!("internal error: {}", msg.into()),
        )
    }

    /// A refused request; `problems` are shown one per line by xvsctl and
    /// are in `data.problems` for scripts.
    pub fn rejected(problems: Vec<String>) -> RpcError {
        let message = match problems.as_slice() {
            [] => "rejected".to_string(),
            [one] => format!("rejected: {one}"),
            many => format!("rejected, {} problems: {}", many.len(), many.join("; ")),
        };
        RpcError::new(codes::REJECTED, message)
            .with_data(serde_json::json!({ "problems": problems }))
    }

    pub fn too_large(limit: usize) -> RpcError {
        RpcError::new(
            codes::REQUEST_TOO_LARGE,
            format!(
                "request too large: no newline within {limit} bytes (the limit); closing the connection"
            ),
        )
        .with_data(serde_json::json!({ "limit": limit }))
    }

    pub fn permission_denied(uid: u32, gid: u32) -> RpcError {
        RpcError::new(
            codes::PERMISSION_DENIED,
            format!(
                "permission denied: uid {uid} (gid {gid}) is neither root nor in the control socket's group"
            ),
        )
    }

    pub fn busy(why: impl Into<String>) -> RpcError {
        RpcError::new(codes::BUSY, format!("busy: {}", why.into()))
    }

    pub fn timeout(after: Duration) -> RpcError {
        RpcError::new(
            codes::TIMEOUT,
            format!(
                "the daemon did not answer within {:.1} s (a transaction may still commit: check with show)",
                after.as_secs_f64()
            ),
        )
    }

    pub fn idle(after: Duration) -> RpcError {
        RpcError::new(
            codes::IDLE,
            format!(
                "no complete request within {:.1} s: closing the connection",
                after.as_secs_f64()
            ),
        )
    }

    /// The problems of a [`codes::REJECTED`] error (`data.problems`), else
    /// the message alone.
    pub fn problems(&self) -> Vec<String> {
        let listed = self
            .data
            .as_ref()
            .and_then(|d| d.get("problems"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            });
        match listed {
            Some(l) if !l.is_empty() => l,
            _ => vec![self.message.clone()],
        }
    }
}

pub(super) fn brief_str(s: &str) -> String {
    brief(&Value::String(s.to_string()))
        .trim_matches('"')
        .to_string()
}

/// One response line: `result` on success, `error` on failure, never both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub jsonrpc: String,
    pub id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    /// A success. A result that cannot be serialized (a map with non-string
    /// keys: a bug) becomes an internal error rather than a panic.
    pub fn ok<T: Serialize>(id: Id, result: &T) -> Response {
        match serde_json::to_value(result) {
            Ok(v) => Response {
                jsonrpc: JSONRPC.to_string(),
                id,
                result: Some(v),
                error: None,
            },
            Err(e) => Response::error(id, RpcError::internal(format!("result: {e}"))),
        }
    }

    pub fn error(id: Id, error: RpcError) -> Response {
        Response {
            jsonrpc: JSONRPC.to_string(),
            id,
            result: None,
            error: Some(error),
        }
    }

    /// `Ok(result)`, or the error. A response with neither is a protocol
    /// violation, reported as an internal error.
    pub fn into_result(self) -> Result<Value, RpcError> {
        match (self.result, self.error) {
            (_, Some(e)) => Err(e),
            (Some(v), None) => Ok(v),
            (None, None) => Err(RpcError::internal("response has neither result nor error")),
        }
    }

    /// The line to send, without the newline.
    pub fn to_line(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|e| {
            // Only a non-string map key could fail; answer with a fixed,
            // always-serializable error instead.
            let fallback = Response::error(self.id.clone(), RpcError::internal(e.to_string()));
            serde_json::to_vec(&fallback).unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(line: &str) -> (Id, RpcError) {
        parse_request(line.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_request_round_trips() {
        let m = Method::FdbShow(FdbShowParams {
            bridge: Some("br0".into()),
        });
        let r = Request::new(Id::Number(7), &m);
        let line = serde_json::to_vec(&r).unwrap();
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            r#"{"jsonrpc":"2.0","id":7,"method":"fdb_show","params":{"bridge":"br0"}}"#
        );
        let back = parse_request(&line).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.method().unwrap(), m);
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let (id, e) = err_of(r#"{"jsonrpc":"2.0","id":1,"meth"#);
        assert_eq!(id, Id::Null);
        assert_eq!(e.code, codes::PARSE_ERROR);
        assert!(e.message.contains("line 1 column"), "{}", e.message);
    }

    #[test]
    fn envelope_errors_say_what_is_wrong() {
        let (_, e) = err_of("[1,2]");
        assert_eq!(e.code, codes::INVALID_REQUEST);
        assert!(e.message.contains("batches"), "{}", e.message);
        let (_, e) = err_of(r#"{"jsonrpc":"2.0","method":"show"}"#);
        assert!(e.message.contains("missing \"id\""), "{}", e.message);
        let (id, e) = err_of(r#"{"jsonrpc":"1.0","id":"a","method":"show"}"#);
        assert_eq!(id, Id::String("a".into()));
        assert!(
            e.message.contains("\"jsonrpc\" must be \"2.0\""),
            "{}",
            e.message
        );
        let (_, e) = err_of(r#"{"jsonrpc":"2.0","id":3,"method":5}"#);
        assert!(
            e.message.contains("\"method\" must be a string"),
            "{}",
            e.message
        );
        let (_, e) = err_of(r#"{"jsonrpc":"2.0","id":3,"method":"show","colour":1}"#);
        assert!(
            e.message.contains("unknown member \"colour\""),
            "{}",
            e.message
        );
        let (_, e) = err_of(r#"{"jsonrpc":"2.0","id":1.5,"method":"show"}"#);
        assert!(e.message.contains("\"id\" must be"), "{}", e.message);
        let (_, e) = err_of(r#"{"jsonrpc":"2.0","id":1,"method":"show","params":3}"#);
        assert!(e.message.contains("\"params\" must be"), "{}", e.message);
    }

    #[test]
    fn unknown_methods_and_bad_params_are_named() {
        let e = Method::from_request("shwo", None).unwrap_err();
        assert_eq!(e.code, codes::METHOD_NOT_FOUND);
        assert!(e.message.contains("\"shwo\"") && e.message.contains("transact"));

        let e = Method::from_request("show", Some(&serde_json::json!({"x": 1}))).unwrap_err();
        assert_eq!(e.code, codes::INVALID_PARAMS);

        let e = Method::from_request("stats", Some(&serde_json::json!({"per_worker": "yes"})))
            .unwrap_err();
        assert!(e.message.contains("params.per_worker"), "{}", e.message);

        let e = Method::from_request("acl_show", None).unwrap_err();
        assert!(e.message.contains("acl_show"), "{}", e.message);
        let e = Method::from_request(
            "acl_show",
            Some(&serde_json::json!({"port": "vm1", "dir": "sideways"})),
        )
        .unwrap_err();
        assert!(e.message.contains("params.dir"), "{}", e.message);

        let e = Method::from_request(
            "transact",
            Some(&serde_json::json!({"commands": [
                {"op": "add-br", "name": "br0"},
                {"op": "fdb-add", "bridge": "br0", "mac": "02:00:00:00:00:zz", "port": "vm1"}
            ]})),
        )
        .unwrap_err();
        assert_eq!(e.code, codes::INVALID_PARAMS);
        assert!(
            e.message.contains("params.commands[1].mac") && e.message.contains("(fdb-add)"),
            "{}",
            e.message
        );
        assert_eq!(e.data.unwrap()["path"], "params.commands[1].mac");

        let e = Method::from_request(
            "transact",
            Some(&serde_json::json!({"commands": [{"op": "add-bridge", "name": "br0"}]})),
        )
        .unwrap_err();
        assert!(
            e.message.contains("unknown op \"add-bridge\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn responses_carry_result_or_error() {
        let ok = Response::ok(
            Id::Number(1),
            &TransactResult {
                applied: 2,
                changed: true,
            },
        );
        let line = String::from_utf8(ok.to_line()).unwrap();
        assert_eq!(
            line,
            r#"{"jsonrpc":"2.0","id":1,"result":{"applied":2,"changed":true}}"#
        );
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back.into_result().unwrap()["applied"], 2);

        let e = RpcError::rejected(vec!["a".into(), "b".into()]);
        assert_eq!(e.problems(), vec!["a", "b"]);
        let r = Response::error(Id::Null, e);
        let line = String::from_utf8(r.to_line()).unwrap();
        assert!(
            line.contains(r#""code":-32000"#) && line.contains(r#""id":null"#),
            "{line}"
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let huge = "x".repeat(100_000);
        let e = RpcError::method_not_found(&huge);
        assert!(e.message.len() < 300, "{}", e.message.len());
    }
}
