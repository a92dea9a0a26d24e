// SPDX-License-Identifier: MIT
//! Gives this crate's tests and examples an rpath to the libsdflow that
//! sdflow-sys linked (DEP_SDFLOW_LIBDIR), so `cargo test` runs without
//! LD_LIBRARY_PATH. Programs of other crates find the library on the
//! loader's path (an installed libsdflow0) or through LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_SDFLOW_LIBDIR");
    if let Ok(d) = std::env::var("DEP_SDFLOW_LIBDIR") {
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{}", d);
        println!("cargo:rustc-link-arg-examples=-Wl,-rpath,{}", d);
    }
}
