//! xvsctl: the operator's tool for xvsd (see `xvsctl --help` and
//! `xvs_ctl::cli`, where everything but the process plumbing lives).

fn main() {
    let code = xvs_ctl::cli::run(
        std::env::args_os().collect(),
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}
