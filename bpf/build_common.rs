//! Compiling an XDP program in a build script, shared by the build scripts
//! of `xvs-bpf` (the switch's programs) and `xvs-bench` (xvs-pktgen's send
//! engine), which include this file by path.
//!
//! Goes through libbpf-cargo's SkeletonBuilder because it supplies
//! libbpf's BPF headers (`bpf/bpf_helpers.h`); the typed skeleton is not
//! generated: its maps borrow from an `OpenObject` the caller must keep in
//! place, while `libbpf_rs::Object` plus owned `MapHandle`s fit a struct
//! that lives as long as the attachment.
//!
//! Needs clang and the kernel UAPI headers; Debian keeps `asm/` under the
//! multiarch include directory, which `-target bpf` does not search.

use std::env;
use std::path::Path;

use libbpf_cargo::SkeletonBuilder;

/// Compiles `src` (its headers in `include`) into `OUT_DIR/obj`, and asks
/// cargo to rebuild when it changes.
pub fn compile_xdp(src: &str, include: &str, obj: &str) {
    let out = env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => panic!("no multiarch include directory known for {other}"),
    };
    SkeletonBuilder::new()
        .source(src)
        .obj(Path::new(&out).join(obj))
        .clang_args([
            format!("-I/usr/include/{multiarch}"),
            format!("-I{include}"),
            "-Wall".to_string(),
            "-Werror".to_string(),
        ])
        .build()
        .unwrap_or_else(|e| panic!("building {src} failed: {e:#}"));
    println!("cargo:rerun-if-changed={src}");
}
