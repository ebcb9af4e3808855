#!/usr/bin/env bash
# The measurement behind docs/decisions.md D19: one scratch binary with telemetryctl's command
# line (options, three commands) built three ways — no parser, lexopt, clap with derive +
# clap_complete + clap_mangen — each from clean, in release with the workspace's profile, one after
# the other in one run. Prints clean build seconds, binary size, stripped size and crate count.
# Sizes do not depend on the machine's load; build times do (compare them within one run).
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for k in none lexopt clap; do cargo new -q --bin "$k"; done
cat >> clap/Cargo.toml <<'EOF'
clap = { version = "4.5", features = ["derive"] }
clap_complete = "4.5"
clap_mangen = "0.2"
EOF
echo 'lexopt = "0.3"' >> lexopt/Cargo.toml
for k in none lexopt clap; do printf '[profile.release]\ndebug = "line-tables-only"\n' >> "$k/Cargo.toml"; done
cat > clap/src/main.rs <<'EOF'
use clap::{CommandFactory, Parser, Subcommand};
#[derive(Parser)]
#[command(version, about = "operate the pipeline")]
struct Cli {
    #[arg(long)] config: Option<std::path::PathBuf>,
    #[arg(long)] json: bool,
    #[arg(long)] watch: Option<u64>,
    #[command(subcommand)] cmd: Cmd,
}
#[derive(Subcommand)]
enum Cmd { Status, Stats { #[arg(long)] prometheus: bool }, Restart { stage: String }, Completions { shell: clap_complete::Shell }, Man }
fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Completions { shell } => clap_complete::generate(shell, &mut Cli::command(), "x", &mut std::io::stdout()),
        Cmd::Man => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).unwrap(),
        Cmd::Status => println!("{:?} {}", cli.config, cli.json),
        Cmd::Stats { prometheus } => println!("{prometheus} {:?}", cli.watch),
        Cmd::Restart { stage } => println!("{stage}"),
    }
}
EOF
cat > lexopt/src/main.rs <<'EOF'
fn main() -> Result<(), lexopt::Error> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let (mut config, mut json, mut watch, mut prom, mut cmd, mut stage) = (None, false, None, false, None, None);
    while let Some(arg) = p.next()? {
        match arg {
            Long("config") => config = Some(std::path::PathBuf::from(p.value()?)),
            Long("json") => json = true,
            Long("prometheus") => prom = true,
            Long("watch") => watch = Some(p.value()?.parse::<u64>()?),
            Long("help") => { println!("usage: x [--config PATH] status|stats|restart STAGE"); return Ok(()); }
            Long("version") => { println!("x {}", env!("CARGO_PKG_VERSION")); return Ok(()); }
            Value(v) if cmd.is_none() => cmd = Some(v.string()?),
            Value(v) => stage = Some(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    println!("{config:?} {json} {watch:?} {prom} {cmd:?} {stage:?}");
    Ok(())
}
EOF
echo 'fn main() { let a: Vec<String> = std::env::args().collect(); println!("{a:?}"); }' > none/src/main.rs
for k in none lexopt clap; do (cd "$k" && cargo fetch -q); done
for k in none lexopt clap; do
  cd "$work/$k"
  start=$(date +%s.%N)
  cargo build --release -q
  end=$(date +%s.%N)
  strip -o stripped "target/release/$k"
  printf '%-7s clean_build_s=%.1f size=%d stripped=%d crates=%d\n' "$k" "$(awk "BEGIN{print $end - $start}")" \
    "$(stat -c %s "target/release/$k")" "$(stat -c %s stripped)" \
    "$(cargo tree -e normal --prefix none | sort -u | wc -l)"
done
