//! Any split of the input into chunks gives byte-identical outputs.
mod common;

use common::*;
use proptest::prelude::*;

fn dirty_input(rows: usize) -> String {
    let mut s = String::from("\u{feff}session_id,timestamp,consent,email,customer_id,ip_address,page\r\n");
    let consents = ["[1,2,3]", "[1]", "analytics", "", "garbage", "marketing", "2"];
    for i in 0..rows {
        let sess = i % 7;
        s.push_str(&format!(
            "s{sess},2026-03-0{}T{:02}:{:02}:00{},\"{}\",\"user{sess}, \"\"x\"\"@example.com\",C{sess},10.0.0.{i},\"/p?a=1\nb={i}\"\r\n",
            1 + i % 3,
            i % 24,
            i % 60,
            if i % 4 == 0 { "+05:45" } else { "Z" },
            consents[i % consents.len()],
        ));
    }
    s
}

fn whole(json: &str, input: &str) -> Run {
    run_chunked(&config(json), input.as_bytes(), &[usize::MAX], [9; 32], &mut MemoryStore::default()).unwrap()
}

fn assert_same(a: &Run, b: &Run) {
    assert_eq!(a.out.encrypted, b.out.encrypted);
    assert_eq!(a.out.keys, b.out.keys);
    assert_eq!(a.out.derived, b.out.derived);
    assert_eq!(a.summary, b.summary);
}

#[test]
fn one_byte_chunks_give_identical_outputs() {
    let input = dirty_input(60);
    for cipher in ["", r#", "cipher": "aes-256-siv""#] {
        let json = clickstream_job(cipher);
        let a = whole(&json, &input);
        let b = run_chunked(&config(&json), input.as_bytes(), &[1], [9; 32], &mut MemoryStore::default()).unwrap();
        assert_same(&a, &b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn any_split_gives_identical_outputs(sizes in proptest::collection::vec(1usize..300, 1..20)) {
        let input = dirty_input(40);
        let json = clickstream_job("");
        let a = whole(&json, &input);
        let b = run_chunked(&config(&json), input.as_bytes(), &sizes, [9; 32], &mut MemoryStore::default()).unwrap();
        assert_same(&a, &b);
    }
}
