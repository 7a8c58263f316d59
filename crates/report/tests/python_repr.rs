//! The debug line must be byte-identical to what Python prints, so the float
//! and string formatters are checked against strings CPython produced
//! (`tests/data/python_repr.tsv`).

use report::{python_float_repr, python_str_repr};

const CASES: &str = include_str!("data/python_repr.tsv");

fn cases(kind: &str) -> impl Iterator<Item = (&str, &str)> + '_ {
    CASES
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(move |line| {
            let mut fields = line.splitn(3, '\t');
            let (k, input, expected) = (fields.next()?, fields.next()?, fields.next()?);
            (k == kind).then_some((input, expected))
        })
}

#[test]
fn floats_print_as_python_repr() {
    let mut checked = 0;
    for (bits, expected) in cases("float") {
        let bits = u64::from_str_radix(bits, 16).expect("hex bits");
        let value = f64::from_bits(bits);
        assert_eq!(python_float_repr(value), expected, "bits {bits:016x}");
        checked += 1;
    }
    assert!(checked > 600, "only {checked} float cases were read");
}

#[test]
fn strings_print_as_python_repr() {
    let mut checked = 0;
    for (json, expected) in cases("str") {
        let text: String = serde_json::from_str(json).expect("JSON string");
        assert_eq!(python_str_repr(&text), expected, "input {json}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} string cases were read");
}
