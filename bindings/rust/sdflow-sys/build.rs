// SPDX-License-Identifier: MIT
//! Finds libsdflow without external crates, in this order:
//! 1. `SDFLOW_LIB_DIR` (a directory holding libsdflow.so), e.g. set by `make rust-test`;
//! 2. the repository's `lib/` when this crate is built in-tree and the library was built there;
//! 3. `pkg-config --libs sdflow` (an installed libsdflow-dev or `make install`);
//! 4. otherwise plain `-lsdflow` on the linker's default path.
//! The directory found is passed to dependents as `DEP_SDFLOW_LIBDIR` (links = "sdflow"),
//! which the `sdflow` crate's build script turns into an rpath for its tests and examples.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn has_lib(dir: &Path) -> bool {
    dir.join("libsdflow.so").exists() || dir.join("libsdflow.a").exists()
}

fn main() {
    println!("cargo:rerun-if-env-changed=SDFLOW_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let mut dir: Option<PathBuf> = None;
    if let Ok(d) = env::var("SDFLOW_LIB_DIR") {
        let p = PathBuf::from(d);
        if !has_lib(&p) {
            panic!("SDFLOW_LIB_DIR={} holds no libsdflow.so (build it with `make`)", p.display());
        }
        dir = Some(p);
    }
    if dir.is_none() {
        // bindings/rust/sdflow-sys -> the repository root's lib/
        let in_tree = manifest.join("../../../lib");
        if has_lib(&in_tree) && manifest.join("../../../include/sdflow.h").exists() {
            dir = Some(in_tree.canonicalize().unwrap_or(in_tree));
        }
    }
    if let Some(d) = dir {
        println!("cargo:rustc-link-search=native={}", d.display());
        println!("cargo:rustc-link-lib=dylib=sdflow");
        println!("cargo:libdir={}", d.display());
        return;
    }
    if let Ok(out) = Command::new("pkg-config").args(["--libs", "sdflow"]).output() {
        if out.status.success() {
            let libs = String::from_utf8_lossy(&out.stdout).to_string();
            for w in libs.split_whitespace() {
                if let Some(p) = w.strip_prefix("-L") {
                    println!("cargo:rustc-link-search=native={}", p);
                    println!("cargo:libdir={}", p);
                } else if let Some(l) = w.strip_prefix("-l") {
                    println!("cargo:rustc-link-lib=dylib={}", l);
                }
            }
            return;
        }
    }
    println!("cargo:rustc-link-lib=dylib=sdflow");
}
