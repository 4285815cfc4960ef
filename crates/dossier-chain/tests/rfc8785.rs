//! RFC 8785 reference vectors (tests/rfc8785/, from the RFC author's repository):
//! the canonicalizer that produces event bodies must reproduce them exactly,
//! including the number cases that dossier itself never writes.

use std::path::Path;

#[test]
fn rfc8785_reference_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc8785");
    let mut names: Vec<_> = std::fs::read_dir(dir.join("input"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in names {
        let input = std::fs::read(dir.join("input").join(&name)).unwrap();
        let expected = std::fs::read(dir.join("output").join(&name)).unwrap();
        // Through serde_json::Value, as payloads are, not the string-to-string shortcut.
        let value: serde_json::Value = serde_json::from_slice(&input).unwrap();
        let got = serde_json_canonicalizer::to_vec(&value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{name}"
        );
    }
}
