//! Messages with pictures: what a picture must be, how many and how large, and that it reaches the
//! other side byte for byte.

use omsyn_core::RepoError;
use omsyn_core::docs::messages::{
    Attachment, MAX_PICTURE_BYTES, MAX_PICTURES, Recipient, picture_type,
};
use omsyn_tests::{TestNode, at, push};

fn jpeg(len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.resize(len, 0x42);
    bytes
}

#[test]
fn a_picture_travels_with_its_message_byte_for_byte() {
    let mut base = TestNode::base(1);
    let patient = base.add_patient("Turid");
    let home = TestNode::home_unit(2, &patient);
    push(&base.repo, &home.repo);
    let photo = jpeg(100_000);
    let picture = Attachment::picture("image/jpeg", Some("saar.jpg"), &photo).unwrap();
    let mut home = home;
    let sent = home
        .repo
        .send_message(
            at("09:00"),
            &mut home.rng,
            &patient,
            Recipient::CareTeam,
            "",
            None,
            vec![picture],
        )
        .expect("a picture needs no text");
    push(&home.repo, &base.repo);
    let view = base.repo.patient_view(&patient).unwrap();
    let got = view.messages.iter().find(|m| m.id == sent.id).unwrap();
    assert_eq!(got.attachments.len(), 1);
    assert_eq!(got.attachments[0].bytes().unwrap(), photo);
    assert_eq!(got.attachments[0].size, photo.len());
    assert_eq!(got.attachments[0].name.as_deref(), Some("saar.jpg"));
}

#[test]
fn pictures_must_be_images_of_their_stated_type_and_within_bounds() {
    assert_eq!(picture_type(&jpeg(10)), Some("image/jpeg"));
    assert_eq!(picture_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
    assert_eq!(picture_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
    assert_eq!(picture_type(b"<svg onload=alert(1)>"), None);
    let refused = |r: Result<Attachment, omsyn_core::docs::DocError>| {
        r.expect_err("should be refused").to_string()
    };
    assert!(refused(Attachment::picture("image/png", None, &jpeg(10))).contains("not a image/png"));
    assert!(refused(Attachment::picture("image/svg+xml", None, b"<svg/>")).contains("image/jpeg"));
    assert!(
        refused(Attachment::picture(
            "image/jpeg",
            None,
            &jpeg(MAX_PICTURE_BYTES + 1)
        ))
        .contains("at most")
    );
    assert!(refused(Attachment::picture("image/jpeg", Some("a\nb"), &jpeg(10))).contains("name"));
    Attachment::picture("image/jpeg", None, &jpeg(MAX_PICTURE_BYTES))
        .expect("the limit itself is fine");

    let mut base = TestNode::base(1);
    let patient = base.add_patient("Turid");
    let mut send = |pictures: Vec<Attachment>, text: &str| {
        base.repo.send_message(
            at("09:00"),
            &mut base.rng,
            &patient,
            Recipient::Home,
            text,
            None,
            pictures,
        )
    };
    let small = Attachment::picture("image/jpeg", None, &jpeg(1000)).unwrap();
    let big = Attachment::picture("image/jpeg", None, &jpeg(MAX_PICTURE_BYTES)).unwrap();
    for (pictures, text, why) in [
        (vec![small.clone(); MAX_PICTURES + 1], "x", "at most"),
        (vec![big.clone(), big.clone(), big], "x", "together"),
        (vec![], " ", "text"),
    ] {
        let result = send(pictures, text);
        assert!(
            matches!(&result, Err(RepoError::Doc(e)) if e.to_string().contains(why)),
            "{why}: {result:?}"
        );
    }
    assert!(
        base.repo
            .patient_view(&patient)
            .unwrap()
            .messages
            .is_empty(),
        "nothing half-stored"
    );
}
