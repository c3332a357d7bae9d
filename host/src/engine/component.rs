//! The keylink component in wasmtime (filled in by the component work).
