//! Compiles xvs-pktgen's XDP send engine, `xdp/pktgen.bpf.c`, into
//! `$OUT_DIR/pktgen.bpf.o`, which `src/pktgen/xdp/mod.rs` embeds (the same
//! way xvs-bpf builds the switch's programs).

#[path = "../bpf/build_common.rs"]
mod build_common;

fn main() {
    build_common::compile_xdp("xdp/pktgen.bpf.c", "xdp", "pktgen.bpf.o");
    println!("cargo:rerun-if-changed=xdp/pktgen.h");
    println!("cargo:rerun-if-changed=../bpf/build_common.rs");
}
