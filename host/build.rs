//! Builds the keylink component as part of the host's own build.
//!
//! 1. A nested `cargo build -p keylink-component --release --target
//!    wasm32-unknown-unknown` with `-C target-feature=+simd128`, in its own
//!    target directory (`<target>/wasm-guest`): the outer cargo holds the lock
//!    of the outer target directory for the whole build, so sharing it would
//!    deadlock.
//! 2. The core module is checked to import nothing, then encoded as a
//!    component with `wit-component` (the world's type information is in the
//!    module's `component-type` custom section, put there by wit-bindgen).
//! 3. The component goes to `$OUT_DIR/keylink.component.wasm`, which
//!    `src/engine/component.rs` includes with `include_bytes!`.
//!
//! # Environment of the nested build
//! Cargo hands build scripts variables meant for the *outer* build (its
//! RUSTFLAGS, target directory, profile overrides, wrappers, jobserver). They
//! would change or break the guest build, so they are removed: every
//! `CARGO_*` variable except those that configure the user's cargo itself
//! (home, network, registries, terminal), and the rustc/rustflags/make
//! variables. The jobserver variables go too, so the nested cargo runs its
//! own job pool instead of waiting on tokens of an outer pool that this build
//! script is itself holding.
use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "wasm32-unknown-unknown";
const GUEST_PACKAGE: &str = "keylink-component";
const GUEST_ARTIFACT: &str = "keylink_component.wasm";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("host/ is inside the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    for path in ["core/src", "core/Cargo.toml", "wasm/component", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }

    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).unwrap_or_default();
    let wasmtime_version = locked_version(&lock, "wasmtime").unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KEYLINK_WASMTIME_VERSION={wasmtime_version}");

    let guest_target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm-guest"),
        None => workspace.join("target").join("wasm-guest"),
    };

    let module_path = build_guest(&workspace, &guest_target_dir);
    let module = std::fs::read(&module_path)
        .unwrap_or_else(|e| fail(&format!("cannot read the guest module {}: {e}", module_path.display())));
    check_no_imports(&module);
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| fail(&format!("cannot encode {} as a component: {e:?}", module_path.display())));
    let dest = out_dir.join("keylink.component.wasm");
    std::fs::write(&dest, &component)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", dest.display())));
}

/// The version of `package` in Cargo.lock (names the compiled-code cache).
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let wanted = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_string());
        }
    }
    None
}

/// Runs the nested cargo build and returns the path of the core module.
fn build_guest(workspace: &Path, target_dir: &Path) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--locked", "-p", GUEST_PACKAGE, "--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    scrub_env(&mut cmd);
    cmd.env("RUSTFLAGS", "-C target-feature=+simd128")
        // The guest ships: one codegen unit and full LTO give a smaller and
        // faster module than the workspace's thin LTO.
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort");

    let output = cmd
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run `{}` for the guest build: {e}", cargo.to_string_lossy())));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !target_installed() || stderr.contains("target may not be installed") {
            fail(&format!(
                "the Rust target {GUEST_TARGET} is not installed; the keylink component is built for it.\n\
                 Install it with:\n\n    rustup target add {GUEST_TARGET}\n\ncargo said:\n{stderr}"
            ));
        }
        fail(&format!(
            "the nested build of the keylink component failed ({}):\n{stderr}",
            output.status
        ));
    }
    target_dir.join(GUEST_TARGET).join("release").join(GUEST_ARTIFACT)
}

/// Removes the outer build's variables from the nested cargo's environment.
fn scrub_env(cmd: &mut Command) {
    // Variables that configure the user's cargo, not this build.
    const KEEP_PREFIXES: [&str; 6] =
        ["CARGO_HOME", "CARGO_NET_", "CARGO_HTTP_", "CARGO_REGISTRIES_", "CARGO_REGISTRY_", "CARGO_TERM_"];
    const REMOVE: [&str; 17] = [
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "MAKEFLAGS",
        "MFLAGS",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "CARGO_MAKEFLAGS",
    ];
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let cargo_var = name.starts_with("CARGO_") && !KEEP_PREFIXES.iter().any(|p| name.starts_with(p));
        if cargo_var || REMOVE.contains(&name) || name.starts_with("DEP_") {
            cmd.env_remove(name);
        }
    }
}

/// Whether the standard library for the guest target is installed.
fn target_installed() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else { return true };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot).join("lib/rustlib").join(GUEST_TARGET).join("lib").is_dir()
}

/// The component must be pure computation: a core module import (other than
/// the resource intrinsics of our own exports) would mean a dependency pulled
/// in wasm-bindgen, getrandom or WASI.
fn check_no_imports(module: &[u8]) {
    let mut imports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        match payload {
            Ok(wasmparser::Payload::ImportSection(reader)) => {
                for import in reader {
                    match import {
                        // The canonical ABI's intrinsics for exported
                        // resources (`[resource-new]job`, ...): wit-component
                        // turns them into `canon resource.*`, not imports.
                        Ok(i) if i.module.starts_with("[export]") => {}
                        Ok(i) => imports.push(format!("{}::{}", i.module, i.name)),
                        Err(e) => fail(&format!("cannot read the guest module's imports: {e}")),
                    }
                }
            }
            Ok(_) => {}
            Err(e) => fail(&format!("the guest module is not valid wasm: {e}")),
        }
    }
    if !imports.is_empty() {
        fail(&format!(
            "the keylink component must import nothing, but its core module imports {}: \
             a dependency of keylink-core or keylink-component pulls in wasm-bindgen, getrandom or WASI \
             (turn its default features off for wasm32)",
            imports.join(", ")
        ));
    }
}

fn fail(message: &str) -> ! {
    // `cargo:warning` shows even when cargo hides build-script output.
    for line in message.lines().take(40) {
        println!("cargo:warning={line}");
    }
    panic!("{message}");
}
