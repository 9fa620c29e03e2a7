//! The wire decoder against arbitrary bytes (a property-test fuzz target: cargo-fuzz needs a
//! nightly toolchain, which this machine does not have). Hostile bytes must give an error, never a
//! panic, never an allocation sized by the attacker; every message we encode decodes to itself.

use omsyn_core::NodeKey;
use omsyn_core::docs::DocumentId;
use omsyn_core::ids::{PatientId, StaffId};
use omsyn_core::sync::wire::{self, ErrorCode, FrameDecoder, Message, SignedChange};
use omsyn_core::{Day, Month};
use proptest::prelude::*;

fn doc_id() -> impl Strategy<Value = DocumentId> {
    let patient = any::<[u8; 8]>().prop_map(PatientId::from_bytes);
    let month = || {
        (2000u32..2100, 1u32..=12)
            .prop_map(|(y, m)| Month::parse(&format!("{y:04}-{m:02}")).unwrap())
    };
    prop_oneof![
        patient.clone().prop_map(DocumentId::PatientRecord),
        (patient.clone(), month()).prop_map(|(p, m)| DocumentId::VisitPlan(p, m)),
        (patient.clone(), month()).prop_map(|(p, m)| DocumentId::Journal(p, m)),
        (patient, month()).prop_map(|(p, m)| DocumentId::Messages(p, m)),
        ("[A-Za-z0-9]{1,12}", 1u32..28).prop_map(|(s, d)| DocumentId::DayLog(
            StaffId::parse(&s).unwrap(),
            Day::parse(&format!("2026-11-{d:02}")).unwrap()
        )),
        (any::<u64>(), month()).prop_map(|(seed, m)| {
            use rand::SeedableRng;
            let node = NodeKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed)).id();
            DocumentId::Audit(node, m)
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let heads = prop::collection::vec(any::<[u8; 32]>(), 0..4);
    prop_oneof![
        (any::<[u8; 16]>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(
            |(epoch, certificate)| Message::Hello {
                version: wire::PROTOCOL_VERSION,
                epoch,
                certificate
            }
        ),
        (
            doc_id(),
            prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..64), any::<[u8; 32]>()),
                0..4
            )
        )
            .prop_map(|(doc, changes)| Message::Changes {
                doc,
                changes: changes
                    .into_iter()
                    .map(|(bytes, half)| {
                        let mut signature = [0u8; 64];
                        signature[..32].copy_from_slice(&half);
                        SignedChange { bytes, signature }
                    })
                    .collect()
            }),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3)
            .prop_map(|revocations| Message::Revocations { revocations }),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3)
            .prop_map(|certificates| Message::Certificates { certificates }),
        (doc_id(), "[ -~]{0,40}").prop_map(|(doc, reason)| Message::Reject { doc, reason }),
        (doc_id(), heads.clone()).prop_map(|(doc, heads)| Message::Offer { doc, heads }),
        (doc_id(), heads.clone()).prop_map(|(doc, heads)| Message::Have { doc, heads }),
        (doc_id(), heads).prop_map(|(doc, heads)| Message::Need { doc, heads }),
        doc_id().prop_map(|doc| Message::Decline { doc }),
        (any::<u64>(), any::<u64>()).prop_map(|(round, seq)| Message::PushDone { round, seq }),
        any::<u64>().prop_map(|round| Message::Ack { round }),
        "[ -~]{0,40}".prop_map(|m| Message::Error {
            code: ErrorCode::Refused,
            message: m
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_decode_to_an_error_or_a_message_that_encodes_back(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // Whatever decodes is a well-formed message: encoding it and decoding again gives it back.
        if let Ok(message) = wire::decode(&bytes) {
            let frame = wire::encode(&message);
            prop_assert_eq!(wire::decode(&frame[4..]).unwrap(), message);
        }
        let mut frames = FrameDecoder::default();
        if frames.push(&bytes).is_ok() {
            let mut framed = 0;
            while let Some(frame) = frames.next_frame() {
                framed += frame.len() + 4;
                let _ = wire::decode(&frame);
            }
            prop_assert!(framed <= bytes.len(), "frames out of nothing");
        }
    }

    #[test]
    fn every_encoded_message_decodes_to_itself(message in message()) {
        let frame = wire::encode(&message);
        let mut frames = FrameDecoder::default();
        frames.push(&frame).unwrap();
        let payload = frames.next_frame().unwrap();
        prop_assert_eq!(wire::decode(&payload).unwrap(), message);
    }

    #[test]
    fn a_frame_split_anywhere_reassembles(message in message(), cut in 0usize..100) {
        let frame = wire::encode(&message);
        let cut = cut.min(frame.len());
        let mut frames = FrameDecoder::default();
        frames.push(&frame[..cut]).unwrap();
        frames.push(&frame[cut..]).unwrap();
        prop_assert_eq!(wire::decode(&frames.next_frame().unwrap()).unwrap(), message);
    }

    #[test]
    fn a_flipped_byte_is_an_error_or_another_valid_message(message in message(), at in any::<usize>(), bit in 0u8..8) {
        let mut frame = wire::encode(&message);
        let i = 4 + at % (frame.len() - 4);
        frame[i] ^= 1 << bit;
        let _ = wire::decode(&frame[4..]);
    }
}

/// A real signed change: a nurse's note, as her node commits it (with the node's key). Made
/// once: every case starts from it.
fn real_change() -> SignedChange {
    static CHANGE: std::sync::OnceLock<SignedChange> = std::sync::OnceLock::new();
    CHANGE.get_or_init(make_real_change).clone()
}

fn make_real_change() -> SignedChange {
    let mut nurse = omsyn_tests::TestNode::nurse(77, "N1");
    let mut base = omsyn_tests::TestNode::base(78);
    let patient = base.add_patient("Turid Nilsen");
    omsyn_tests::push(&base.repo, &nurse.repo);
    let t = omsyn_tests::at("09:00");
    nurse
        .repo
        .add_note(t, &mut nurse.rng, &patient, None, t, "hei")
        .unwrap();
    let doc = DocumentId::Journal(patient, t.day().month());
    let change = nurse
        .repo
        .store()
        .with_doc(&doc, |d| d.hashed_changes_since(&[]))
        .unwrap()
        .unwrap()
        .remove(0);
    SignedChange {
        bytes: change.bytes,
        signature: change.signature.unwrap(),
    }
}

proptest! {
    // Each case checks a signature: fewer cases, each from a real change.
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_real_change_with_any_byte_flipped_is_refused_before_it_is_parsed(at in any::<usize>(), bit in 0u8..8) {
        let signed = real_change();
        let mut bytes = signed.bytes.clone();
        let i = at % bytes.len();
        bytes[i] ^= 1 << bit;
        prop_assert!(omsyn_core::pipeline::vouch(signed.bytes.clone(), signed.signature).is_ok());
        prop_assert!(omsyn_core::pipeline::vouch(bytes, signed.signature).is_err());
    }

    #[test]
    fn a_real_change_under_another_signature_is_refused(half in any::<[u8; 32]>()) {
        let signed = real_change();
        let mut signature = signed.signature;
        signature[..32].copy_from_slice(&half);
        prop_assume!(signature != signed.signature);
        let refused = omsyn_core::pipeline::vouch(signed.bytes, signature).unwrap_err();
        prop_assert!(refused.contains("signature"), "{}", refused);
    }

}

#[test]
fn an_announced_frame_over_the_limit_is_refused_before_buffering() {
    let mut frames = FrameDecoder::default();
    let err = frames
        .push(&((wire::MAX_FRAME_BYTES as u32) + 1).to_le_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
}
