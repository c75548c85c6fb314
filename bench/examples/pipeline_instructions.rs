//! Runs the encapsulation pipeline for a fixed number of batches, for
//! instruction counting under callgrind, which is repeatable on this noisy
//! machine where cycle counters are not available:
//!
//! ```sh
//! cargo build --release -p xvs-bench --example pipeline_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     --toggle-collect='xvs_dataplane::pipeline::process_batch*' \
//!     target/release/examples/pipeline_instructions 2000 [FLOWS]
//! # instructions per packet = total Ir / (2000 * 64)
//! ```

fn main() {
    let batches: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let flows: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let ctl = xvs_bench::encap_control();
    let mut l = xvs_bench::EncapLoop::new(&ctl, flows, 64 - 42);
    let mut sent = 0;
    for round in 0..batches {
        sent += l.batch(round);
    }
    println!(
        "{sent} frames sent in {batches} batches; EMC hits {}",
        l.ws.emc_hits()
    );
}
