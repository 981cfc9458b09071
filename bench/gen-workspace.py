#!/usr/bin/env python3
"""Writes one of the rebuild-estimate benchmark's workspaces.

Usage: gen-workspace.py wide|deep DIR

wide: 32 small crates in 4 layers of 8 (each on two of the layer below), on itoa and memchr:
      many units, short chains, the parallelism cargo can use.
deep: a chain of heavy crates: a proc-macro on syn (full), then core (serde derive, the
      proc-macro), engine (ring: a C build), service (tokio, chrono), and a binary (clap
      derive): few units, long chains, little to run side by side.
"""
import os
import sys


def code(name, n):
    """Code rustc takes a moment over: structs, derives, generic functions used at several
    types (monomorphized), and a match."""
    out = []
    for i in range(n):
        out.append(f"""
#[derive(Debug, Clone, PartialEq, Default)]
pub struct {name.capitalize()}Item{i} {{ pub a: u64, pub b: String, pub c: Vec<u32> }}

impl {name.capitalize()}Item{i} {{
    pub fn score(&self) -> u64 {{
        let mut s = self.a;
        for (k, v) in self.c.iter().enumerate() {{
            s = s.wrapping_mul(31).wrapping_add(*v as u64 ^ k as u64);
        }}
        match s % 7 {{ 0 => s + 1, 1 => s * 3, 2 => s ^ 0x55, 3 => s.rotate_left(5), 4 => s / 2 + 9, 5 => !s, _ => s }}
    }}
}}

pub fn fold{i}<T: Clone + std::fmt::Debug>(xs: &[T]) -> Vec<String> {{
    xs.iter().map(|x| format!("{{:?}}-{i}", x.clone())).collect()
}}

pub fn use{i}() -> usize {{
    fold{i}(&[1u8, 2]).len() + fold{i}(&["a", "b"]).len() + fold{i}(&[1.5f64]).len()
        + fold{i}(&[{name.capitalize()}Item{i}::default()]).len()
}}
""")
    return "".join(out)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def wide(root):
    members = []
    for layer in range(4):
        for j in range(8):
            name = f"w{layer}x{j}"
            members.append(name)
            deps = []
            if layer == 0:
                deps = ['itoa = "1"', 'memchr = "2"']
                uses = "pub fn ext() -> usize { itoa::Buffer::new().format(7u8).len() + memchr::memchr(b'a', b\"xa\").unwrap_or(0) }\n"
            else:
                below = [f"w{layer - 1}x{j}", f"w{layer - 1}x{(j + 3) % 8}"]
                deps = [f'{b} = {{ path = "../{b}" }}' for b in below]
                uses = "pub fn ext() -> usize { " + " + ".join(f"{b}::ext() + {b}::use0()" for b in below) + " }\n"
            write(f"{root}/{name}/Cargo.toml",
                  f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\n'
                  + "\n".join(deps) + "\n")
            write(f"{root}/{name}/src/lib.rs", uses + code(name, 12))
    write(f"{root}/Cargo.toml",
          '[workspace]\nresolver = "2"\nmembers = [' + ", ".join(f'"{m}"' for m in members) + "]\n")


def deep(root):
    write(f"{root}/Cargo.toml",
          '[workspace]\nresolver = "2"\nmembers = ["macros", "core", "engine", "service", "app"]\n')
    write(f"{root}/macros/Cargo.toml", """[package]
name = "macros"
version = "0.1.0"
edition = "2021"
[lib]
proc-macro = true
[dependencies]
syn = { version = "2", features = ["full", "extra-traits", "visit"] }
quote = "1"
proc-macro2 = "1"
""")
    write(f"{root}/macros/src/lib.rs", """use proc_macro::TokenStream;
#[proc_macro_derive(Describe)]
pub fn describe(input: TokenStream) -> TokenStream {
    let ast: syn::DeriveInput = syn::parse(input).unwrap();
    let name = &ast.ident;
    let text = name.to_string();
    quote::quote! { impl #name { pub fn describe(&self) -> &'static str { #text } } }.into()
}
""")
    chain = [("core", ['macros = { path = "../macros" }', 'serde = { version = "1", features = ["derive"] }', 'serde_json = "1"'], 40),
             ("engine", ['core = { path = "../core" }', 'ring = "0.17"'], 30),
             ("service", ['engine = { path = "../engine" }', 'tokio = { version = "1", features = ["rt", "macros", "sync", "time"] }', 'chrono = "0.4"'], 30)]
    prev = None
    for name, deps, n in chain:
        write(f"{root}/{name}/Cargo.toml",
              f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\n' + "\n".join(deps) + "\n")
        head = ""
        if name == "core":
            head = "#[derive(macros::Describe, serde::Serialize, serde::Deserialize, Debug)]\npub struct Event { pub at: u64, pub name: String }\npub fn ext() -> usize { serde_json::to_string(&Event { at: 1, name: \"x\".into() }).unwrap().len() + Event { at: 1, name: String::new() }.describe().len() }\n"
        elif name == "engine":
            head = "pub fn ext() -> usize { core::ext() + ring::digest::digest(&ring::digest::SHA256, b\"x\").as_ref().len() }\n"
        else:
            head = "pub fn ext() -> usize { engine::ext() + chrono::Utc::now().timestamp() as usize % 2 }\npub async fn tick() { tokio::task::yield_now().await }\n"
        write(f"{root}/{name}/src/lib.rs", head + code(name, n))
        prev = name
    write(f"{root}/app/Cargo.toml", """[package]
name = "app"
version = "0.1.0"
edition = "2021"
[dependencies]
service = { path = "../service" }
clap = { version = "4", features = ["derive"] }
tokio = { version = "1", features = ["rt", "macros"] }
""")
    write(f"{root}/app/src/main.rs", """use clap::Parser;
#[derive(Parser)]
struct Args { #[arg(long, default_value_t = 1)] n: u32 }
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Args::parse();
    service::tick().await;
    println!("{} {}", a.n, service::ext() + service::use0());
}
""")


if __name__ == "__main__":
    kind, root = sys.argv[1], sys.argv[2]
    {"wide": wide, "deep": deep}[kind](root)
