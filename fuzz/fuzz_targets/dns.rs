//! DNS messages from arbitrary bytes: question names of queries, and the answers of responses
//! (what feeds the passive-DNS cache). Errors, never panics; names stay within bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zdn_agent::dns::{self, Answer, MAX_ANSWERS, MAX_NAME};

fuzz_target!(|data: &[u8]| {
    let _ = dns::for_each_query_name(data, |name| assert!(name.len() <= MAX_NAME));
    let mut answers = 0;
    let _ = dns::for_each_answer(data, |owner, answer| {
        answers += 1;
        assert!(owner.len() <= MAX_NAME);
        if let Answer::Alias(name) = answer {
            assert!(name.len() <= MAX_NAME);
        }
    });
    assert!(answers <= MAX_ANSWERS);
});
