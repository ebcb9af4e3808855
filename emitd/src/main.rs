//! `emitd`: a pipeline stage. Not built yet; see the issue "The four stages end to end".

fn main() {
    eprintln!("emitd: not built yet");
    std::process::exit(2);
}
