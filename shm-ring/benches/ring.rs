//! The ring benchmark; being written.

fn main() {}
