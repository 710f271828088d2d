//! Writes `spec/vectors/valid.json` and `spec/vectors/invalid.json`.
//!
//! Run from anywhere: `cargo run -p oneway-token --example generate_vectors`.
//! `tests/vectors.rs` fails when the committed files differ from what this writes.

#[path = "../tests/common/vectors.rs"]
mod vectors;

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors");
    std::fs::create_dir_all(&dir)?;
    for (file, doc) in [
        ("valid.json", vectors::valid_json()),
        ("invalid.json", vectors::invalid_json()),
        (
            "dialer-certificate.json",
            vectors::dialer_certificate_json(),
        ),
        ("reply-code.json", vectors::reply_code_json()),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, vectors::render(&doc))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
