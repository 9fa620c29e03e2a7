//! uniffi-bindgen, built against the same uniffi version as the library (library mode):
//! `cargo run -p omsyn-mobile --bin uniffi-bindgen -- generate --library <lib> --language kotlin`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
