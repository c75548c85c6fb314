//! Compiles `src/bpf/xvs.bpf.c` and `src/bpf/pktgen.bpf.c` with clang
//! (through libbpf-cargo's SkeletonBuilder, which also supplies libbpf's
//! BPF headers) into `$OUT_DIR/xvs.bpf.o` and `$OUT_DIR/pktgen.bpf.o`,
//! which the loaders embed. The typed skeleton is not
//! generated: its maps borrow from an `OpenObject` the caller must keep in
//! place, while `libbpf_rs::Object` plus owned `MapHandle`s fit a struct
//! that lives as long as the attachment.
//!
//! Needs clang and the kernel UAPI headers; Debian keeps `asm/` under the
//! multiarch include directory, which `-target bpf` does not search.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

/// Each source and the object it becomes.
const SOURCES: [(&str, &str); 2] = [
    ("src/bpf/xvs.bpf.c", "xvs.bpf.o"),
    ("src/bpf/pktgen.bpf.c", "pktgen.bpf.o"),
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => panic!("xvs-bpf: no multiarch include directory known for {other}"),
    };
    for (src, obj) in SOURCES {
        SkeletonBuilder::new()
            .source(src)
            .obj(out.join(obj))
            .clang_args([
                format!("-I/usr/include/{multiarch}"),
                "-Isrc/bpf".to_string(),
                "-Wall".to_string(),
                "-Werror".to_string(),
            ])
            .build()
            .unwrap_or_else(|e| panic!("xvs-bpf: building {src} failed: {e:#}"));
        println!("cargo:rerun-if-changed={src}");
    }
    println!("cargo:rerun-if-changed=src/bpf/xvs.h");
    println!("cargo:rerun-if-changed=src/bpf/pktgen.h");
}
