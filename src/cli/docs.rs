//! `completions` and `man`: what the shells and `man` read, generated from the same argument
//! definitions `--help` shows, so they never drift from the binary.

use std::path::Path;

use clap::CommandFactory;

use super::{Cli, emit};
use crate::report::Exit;

pub fn completions(shell: clap_complete::Shell) -> Exit {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cachekeeper", &mut out);
    emit(&String::from_utf8_lossy(&out));
    Exit::Ok
}

/// The page of `cmd` (named `name`), in roff.
fn page(cmd: clap::Command) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    Ok(out)
}

pub fn man(dir: Option<&Path>) -> Result<(), String> {
    let mut cmd = Cli::command();
    cmd.build();
    let Some(dir) = dir else {
        let text = page(cmd).map_err(|e| e.to_string())?;
        emit(&String::from_utf8_lossy(&text));
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, text: Vec<u8>| {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("cachekeeper-{}", sub.get_name());
        let text = page(sub.clone().name(name.clone())).map_err(|e| e.to_string())?;
        write(&name, text)?;
    }
    write("cachekeeper", page(cmd).map_err(|e| e.to_string())?)
}
