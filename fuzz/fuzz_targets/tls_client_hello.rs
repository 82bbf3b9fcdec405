//! TLS ClientHellos from arbitrary stream prefixes and handshake messages.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zdn_agent::tls;

fuzz_target!(|data: &[u8]| {
    if let Ok(tls::Progress::Complete { .. }) = tls::client_hello_progress(data) {
        let message = tls::handshake_of(data).expect("a complete hello has a handshake message");
        let _ = tls::parse_handshake(&message, false);
    }
    if let Ok(hello) = tls::parse_handshake(data, true) {
        assert_eq!(hello.ja4.as_str().len(), 36);
    }
});
