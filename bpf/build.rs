//! Compiles `src/bpf/xvs.bpf.c` into `$OUT_DIR/xvs.bpf.o` and
//! `src/bpf/xvs_tc.bpf.c` into `$OUT_DIR/xvs_tc.bpf.o`, which the
//! loader embeds (see `build_common.rs` for how and why).

#[path = "build_common.rs"]
mod build_common;

fn main() {
    build_common::compile_xdp("src/bpf/xvs.bpf.c", "src/bpf", "xvs.bpf.o");
    build_common::compile_xdp("src/bpf/xvs_tc.bpf.c", "src/bpf", "xvs_tc.bpf.o");
    println!("cargo:rerun-if-changed=src/bpf/xvs.h");
    println!("cargo:rerun-if-changed=src/bpf/xvs_tc.h");
    println!("cargo:rerun-if-changed=src/bpf/xvs_uplink_maps.h");
    println!("cargo:rerun-if-changed=build_common.rs");
}
