//! include/shmbus.h is what cbindgen makes of the crate today: regenerated
//! into memory and compared byte for byte. `SHMBUS_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen parses the crate")
        .write(&mut fresh);
    let path = dir.join("include/shmbus.h");
    if std::env::var_os("SHMBUS_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("write include/shmbus.h");
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{} differs from what cbindgen makes of capi/src: regenerate it with \
         `SHMBUS_BLESS=1 cargo test -p shmbus-capi --test header` and commit it",
        path.display()
    );
}
