//! The `mayfly` package is the server and CLI binary (`main.rs`). This library is empty: it
//! exists so that the integration tests can depend on the package itself with the
//! `test-engines` feature, which is how the binary they run gets the `lease-test` engine
//! while release builds do not.
