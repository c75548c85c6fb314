//! Everything xvsd does with bytes from its control socket, short of
//! touching interfaces: a request line is parsed (JSON-RPC envelope, then
//! the typed method and its params), and a `transact` is applied to a
//! config as the daemon would (every command on a copy, then the whole
//! config validated and compiled into a snapshot). No panic, whatever the
//! bytes; a rejected transaction leaves the config as it was.

use xvs_ctl::command::apply_all;
use xvs_ctl::protocol::{parse_request, Method};
use xvs_dataplane::control::Control;

use crate::common;

pub fn ctl_request(data: &[u8]) {
    let Ok(req) = parse_request(data) else {
        return;
    };
    let Ok(method) = Method::from_request(&req.method, req.params.as_ref()) else {
        return;
    };
    if let Method::Transact(p) = method {
        let before = common::small_config();
        match apply_all(&p.commands, &before) {
            Ok(new) => {
                // What the daemon does next: compile it; an error here is a
                // rejection too, never a panic.
                let _ = Control::new().apply(new);
            }
            Err(problems) => assert!(!problems.is_empty()),
        }
    }
}
