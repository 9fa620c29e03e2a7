//! A data directory on a file system that fills up: a write that does not fit is refused with
//! an error that says so, nothing acknowledged before it is lost, and a running node writes again
//! once there is room, without a restart. (Needs root, as the network tests do: the file system
//! is a tmpfs of the test's own.)

use std::path::Path;
use std::process::Command;

use super::cli::{Node, incompressible_text};
use super::network::Daemon;

/// A tmpfs of `size` mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let options = format!("size={size}");
        mount(&["-t", "tmpfs", "-o", &options, "tmpfs"], dir.path());
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the file system `size` in all: room again, as when files are deleted.
    fn grow(&self, size: &str) {
        let options = format!("remount,size={size}");
        mount(&["-o", &options], self.path());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn mount(args: &[&str], on: &Path) {
    let status = Command::new("mount").args(args).arg(on).status().unwrap();
    assert!(status.success(), "mount {args:?} {on:?}");
}

#[test]
fn a_full_disk_refuses_a_write_clearly_loses_nothing_and_a_running_node_writes_again_with_room() {
    let disk = SmallDisk::new("1m");
    let base = Node::new_in(disk.path(), "base", "Base", "K1");
    let patient = base.ok(&["patient", "add", "--name", "Aud Moen", "--zone", "Sone 1"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let _daemon = Daemon::run(&base, &[]);
    // Notes through the running node until the disk is full.
    let mut written = 0;
    let refused = loop {
        assert!(written < 2000, "the disk never filled");
        let text = format!("Notat {written}: {}", incompressible_text(written, 400));
        let out = base.run(&["note", "add", "--patient", &patient, "--text", &text]);
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        written += 1;
    };
    assert!(written > 10, "{written} notes fitted: {refused}");
    assert!(refused.contains("the disk is full"), "{refused}");
    assert!(refused.contains("was not acknowledged"), "{refused}");

    // Room again: the same running node writes, and holds every note acknowledged before.
    disk.grow("16m");
    base.ok(&["note", "add", "--patient", &patient, "--text", "Etter"]);
    let journal = base.ok(&["show", "--patient", &patient])["journal"]
        .as_array()
        .unwrap()
        .clone();
    let texts: Vec<&str> = journal
        .iter()
        .filter_map(|e| e["text"].as_str().or(e["body"]["text"].as_str()))
        .collect();
    for i in 0..written {
        let start = format!("Notat {i}: ");
        assert_eq!(
            texts.iter().filter(|t| t.starts_with(&start)).count(),
            1,
            "note {i} of {written}"
        );
    }
    assert!(texts.contains(&"Etter"), "{texts:?}");
    // The refused note is not there (the full disk failed it before its commit).
    let refused_note = format!("Notat {written}: ");
    assert!(!texts.iter().any(|t| t.starts_with(&refused_note)));
}
