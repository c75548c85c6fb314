//! The methods: one typed [`Method`] per JSON-RPC method, with its params,
//! read from a request's `params` with the failing field's path in the
//! error.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use xvs_config::Direction;

use super::{brief_str, RpcError};
#[cfg(doc)]
use super::{HelloResult, TransactResult};
use crate::command::Command;

/// `transact`: config-changing commands, applied atomically in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactParams {
    pub commands: Vec<Command>,
}

/// `fdb_show`: one bridge, or all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdbShowParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// `dump_flows`: one bridge, or all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpFlowsParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// `acl_show`: the rules of one port, one direction or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclShowParams {
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<Direction>,
}

/// `arp_show`: the overlay addresses of one bridge, or of all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArpShowParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// `trace`: what the switch would do with one frame arriving on `port`
/// (a port, a tunnel's frames arrive on the uplink: name the uplink and
/// give the whole tunnel packet), without sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceParams {
    pub port: String,
    /// The frame, from its Ethernet header, in hex.
    pub frame: String,
}

/// `takeover`: a new xvsd listening at `path` (a Unix socket) takes this
/// daemon's sockets over; this daemon answers once it has, then exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeoverParams {
    pub path: String,
}

/// Which frames of a port a capture takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureDirection {
    /// Frames entering the switch by the port.
    In,
    /// Frames leaving the switch by the port.
    Out,
    #[default]
    Both,
}

/// `capture_start`: copies of the frames entering, leaving, or both, of
/// `port` (a local port or the uplink: a tunnel's frames are the
/// uplink's), up to `snaplen` bytes each (default 65535), kept for
/// `capture_read`. One capture at a time; one not read for 5 s stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureStartParams {
    pub port: String,
    #[serde(default)]
    pub direction: CaptureDirection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snaplen: Option<u32>,
}

/// `capture_read` and `capture_stop`: the capture `capture_start`
/// answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureParams {
    pub id: u64,
}

/// `stats`: every port, tunnel and the uplink, or the one named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default)]
    pub per_worker: bool,
}

/// Every method with its typed params.
///
/// | method | params | result |
/// |---|---|---|
/// | `hello` | none | [`HelloResult`] |
/// | `transact` | [`TransactParams`] | [`TransactResult`] |
/// | `show` | none | the whole `Config` (its serde form, as in the state file) |
/// | `fdb_show` | [`FdbShowParams`] | `[FdbRow]` |
/// | `neigh_show` | none | `[NeighRow]` |
/// | `route_show` | none | `[RouteRow]` |
/// | `dump_flows` | [`DumpFlowsParams`] | `[FlowRow]` |
/// | `acl_show` | [`AclShowParams`] | `[AclRow]` |
/// | `stats` | [`StatsParams`] | `[StatsRow]` |
/// | `worker_stats` | none | `[WorkerStatsRow]` |
/// | `tunnel_ports` | none | `[TunnelPortRow]` |
/// | `arp_show` | [`ArpShowParams`] | `[AddrRow]` |
/// | `trace` | [`TraceParams`] | [`TraceResult`](super::TraceResult) |
/// | `capture_start` | [`CaptureStartParams`] | [`CaptureStarted`](super::CaptureStarted) |
/// | `capture_read` | [`CaptureParams`] | [`CaptureBatch`](super::CaptureBatch), the frames since the last read |
/// | `capture_stop` | [`CaptureParams`] | [`CaptureBatch`](super::CaptureBatch), the last frames |
/// | `mirror_list` | none | `[MirrorRow]` |
/// | `takeover` | [`TakeoverParams`] | [`TakeoverResult`](super::TakeoverResult), once the new daemon took over |
/// | `restart` | none | [`RestartResult`](super::RestartResult): the new daemon started, taking over |
/// | `lookup_misses` | none | `[MissRow]`, the misses of bridges with the external provider since the last call (at most 4096, oldest dropped first) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Hello,
    Transact(TransactParams),
    Show,
    FdbShow(FdbShowParams),
    NeighShow,
    RouteShow,
    DumpFlows(DumpFlowsParams),
    AclShow(AclShowParams),
    Stats(StatsParams),
    WorkerStats,
    TunnelPorts,
    ArpShow(ArpShowParams),
    LookupMisses,
    Trace(TraceParams),
    CaptureStart(CaptureStartParams),
    CaptureRead(CaptureParams),
    CaptureStop(CaptureParams),
    MirrorList,
    Takeover(TakeoverParams),
    Restart,
}

impl Method {
    /// Every method name, as sent on the wire.
    pub const NAMES: &'static [&'static str] = &[
        "hello",
        "transact",
        "show",
        "fdb_show",
        "neigh_show",
        "route_show",
        "dump_flows",
        "acl_show",
        "stats",
        "worker_stats",
        "tunnel_ports",
        "arp_show",
        "lookup_misses",
        "trace",
        "capture_start",
        "capture_read",
        "capture_stop",
        "mirror_list",
        "takeover",
        "restart",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Method::Hello => "hello",
            Method::Transact(_) => "transact",
            Method::Show => "show",
            Method::FdbShow(_) => "fdb_show",
            Method::NeighShow => "neigh_show",
            Method::RouteShow => "route_show",
            Method::DumpFlows(_) => "dump_flows",
            Method::AclShow(_) => "acl_show",
            Method::Stats(_) => "stats",
            Method::WorkerStats => "worker_stats",
            Method::TunnelPorts => "tunnel_ports",
            Method::ArpShow(_) => "arp_show",
            Method::LookupMisses => "lookup_misses",
            Method::Trace(_) => "trace",
            Method::CaptureStart(_) => "capture_start",
            Method::CaptureRead(_) => "capture_read",
            Method::CaptureStop(_) => "capture_stop",
            Method::MirrorList => "mirror_list",
            Method::Takeover(_) => "takeover",
            Method::Restart => "restart",
        }
    }

    /// The params member to send, if the method has any.
    pub fn params(&self) -> Option<Value> {
        let v = match self {
            Method::Transact(p) => serde_json::to_value(p),
            Method::FdbShow(p) => serde_json::to_value(p),
            Method::DumpFlows(p) => serde_json::to_value(p),
            Method::AclShow(p) => serde_json::to_value(p),
            Method::Stats(p) => serde_json::to_value(p),
            Method::ArpShow(p) => serde_json::to_value(p),
            Method::Trace(p) => serde_json::to_value(p),
            Method::CaptureStart(p) => serde_json::to_value(p),
            Method::CaptureRead(p) | Method::CaptureStop(p) => serde_json::to_value(p),
            Method::Takeover(p) => serde_json::to_value(p),
            _ => return None,
        };
        // These types have string keys only: serialization cannot fail.
        v.ok()
    }

    /// Whether the method changes anything (only `transact` does).
    pub fn is_read_only(&self) -> bool {
        !matches!(self, Method::Transact(_))
    }

    /// The typed method for a request's `method` and `params`. Errors name
    /// the method and the field (`params.commands[2].mac`).
    pub fn from_request(method: &str, params: Option<&Value>) -> Result<Method, RpcError> {
        let none = |m: Method| -> Result<Method, RpcError> {
            match params {
                None | Some(Value::Null) => Ok(m),
                Some(Value::Object(o)) if o.is_empty() => Ok(m),
                Some(Value::Array(a)) if a.is_empty() => Ok(m),
                Some(_) => Err(RpcError::invalid_params(
                    method,
                    "",
                    format!("{method} takes no params"),
                )),
            }
        };
        match method {
            "hello" => none(Method::Hello),
            "show" => none(Method::Show),
            "neigh_show" => none(Method::NeighShow),
            "route_show" => none(Method::RouteShow),
            "worker_stats" => none(Method::WorkerStats),
            "tunnel_ports" => none(Method::TunnelPorts),
            "lookup_misses" => none(Method::LookupMisses),
            "mirror_list" => none(Method::MirrorList),
            "restart" => none(Method::Restart),
            "takeover" => typed_params(method, params, false).map(Method::Takeover),
            "transact" => transact_params(params).map(Method::Transact),
            "fdb_show" => typed_params(method, params, true).map(Method::FdbShow),
            "dump_flows" => typed_params(method, params, true).map(Method::DumpFlows),
            "acl_show" => typed_params(method, params, false).map(Method::AclShow),
            "stats" => typed_params(method, params, true).map(Method::Stats),
            "arp_show" => typed_params(method, params, true).map(Method::ArpShow),
            "trace" => typed_params(method, params, false).map(Method::Trace),
            "capture_start" => typed_params(method, params, false).map(Method::CaptureStart),
            "capture_read" => typed_params(method, params, false).map(Method::CaptureRead),
            "capture_stop" => typed_params(method, params, false).map(Method::CaptureStop),
            other => Err(RpcError::method_not_found(other)),
        }
    }
}

/// Params as a typed struct, with the failing field's path in the error.
/// Only by-name (object) params are accepted: positional ones would make
/// the optional fields ambiguous.
fn typed_params<T: DeserializeOwned>(
    method: &str,
    params: Option<&Value>,
    all_optional: bool,
) -> Result<T, RpcError> {
    let v = match params {
        None | Some(Value::Null) if all_optional => Value::Object(Map::new()),
        None | Some(Value::Null) => {
            return Err(RpcError::invalid_params(
                method,
                "",
                "missing (expected an object)",
            ))
        }
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            return Err(RpcError::invalid_params(
                method,
                "",
                "expected an object of named params, not an array",
            ))
        }
    };
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        RpcError::invalid_params(method, &path, e.into_inner())
    })
}

/// `transact` params, each command on its own so that an error names the
/// command's index and op and the field inside it.
fn transact_params(params: Option<&Value>) -> Result<TransactParams, RpcError> {
    let err = |path: &str, msg: &dyn fmt::Display| RpcError::invalid_params("transact", path, msg);
    let Some(Value::Object(obj)) = params else {
        return Err(err("", &"expected an object {\"commands\": [...]}"));
    };
    if let Some(k) = obj.keys().find(|k| *k != "commands") {
        return Err(err(k, &"unknown field (transact takes only `commands`)"));
    }
    let Some(list) = obj.get("commands") else {
        return Err(err("", &"missing field `commands`"));
    };
    let Value::Array(list) = list else {
        return Err(err("commands", &"expected an array of commands"));
    };
    let mut commands = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        match Command::from_value(c) {
            Ok(c) => commands.push(c),
            Err((path, msg)) => {
                let at = if path.is_empty() {
                    format!("commands[{i}]")
                } else {
                    format!("commands[{i}].{path}")
                };
                let op = c.get("op").and_then(Value::as_str).map(brief_str);
                let msg = match op {
                    Some(op) => format!("({op}) {msg}"),
                    None => msg,
                };
                return Err(err(&at, &msg));
            }
        }
    }
    Ok(TransactParams { commands })
}
