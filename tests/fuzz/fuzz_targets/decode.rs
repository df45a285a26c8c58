//! The wire decoders on arbitrary bytes: they never panic, they agree with each other, and what they
//! accept is exactly what the encoder writes (one encoding per message).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringsmr::wire;

fuzz_target!(|data: &[u8]| {
    let copied = wire::decode(data);
    let shared = wire::decode_bytes(&Bytes::copy_from_slice(data));
    assert_eq!(copied, shared, "the copying and the sharing decoder disagree");
    if let Ok((msg, used_bytes)) = copied {
        let mut encoded = Vec::new();
        wire::encode(&msg, &mut encoded);
        assert_eq!(
            &encoded[..],
            &data[..used_bytes],
            "a frame encode would not write was accepted"
        );
    }
});
