//! The committed OULAD mapping (examples/oulad/mapping.toml) on the real data
//! in ../shared/data/real/oulad, read in place; skipped, with the reason
//! printed, where that data is absent. The expected counts are the data's own
//! (its README and a count of the files), not ours.

use std::path::PathBuf;

use churn_core::{EventType, parse_timestamp};

#[test]
fn the_oulad_mapping_imports_the_three_presentations() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = root.join("../shared/data/real/oulad/subset_3pres/studentVle.csv.xz");
    if !data.is_file() {
        eprintln!("SKIPPED: OULAD import test: {} is absent", data.display());
        return;
    }
    let mapping = churn_import::Mapping::read(&root.join("examples/oulad/mapping.toml"))
        .expect("the committed mapping reads");
    let out = tempfile::tempdir().expect("tempdir");
    let report = churn_import::import(&mapping, out.path()).expect("imports");
    let section = |name: &str| {
        report
            .sections
            .iter()
            .find(|s| s.section == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    // 2,515 student-presentations; one has no registration date (BBB 2013B
    // student 630346, withdrawn before registering): the only reject.
    let learners = section("learners");
    assert_eq!(
        (learners.read, learners.imported, learners.rejected),
        (2515, 2514, 1)
    );
    assert!(learners.rejects[0].values["id_student"] == "630346");
    let clicks = section("events[0]");
    assert_eq!((clicks.read, clicks.rejected), (753_564, 0));
    // 631 withdrew; every one has its unregistration date.
    let withdrawals = section("events[1]");
    assert_eq!(
        (withdrawals.imported, withdrawals.filtered),
        (631, 2515 - 631)
    );

    let now = parse_timestamp("2026-12-31T00:00:00Z").expect("time");
    let loaded = churn_data::load_dir(out.path(), &churn_data::LoadOptions { now }).expect("loads");
    assert_eq!(
        loaded.report.total_rejected(),
        0,
        "the contract accepts every imported row"
    );
    let d = &loaded.dataset;
    let cancels = d
        .events
        .iter()
        .filter(|e| e.event_type == EventType::SubscriptionCancel)
        .count();
    assert_eq!(cancels, 631);
    assert!(
        d.events
            .iter()
            .filter(|e| e.event_type.known().is_none())
            .all(|e| e.event_type.is_activity())
    );
    // The three presentations are courses with their ends (start + length).
    assert_eq!(d.courses.len(), 3);
    let aaa_2013j = d
        .courses
        .iter()
        .find(|c| c.id == "AAA_2013J")
        .expect("AAA 2013J");
    let october = parse_timestamp("2013-10-01T00:00:00Z").expect("time");
    assert_eq!(aaa_2013j.ends_at, Some(october + 268 * churn_core::DAY_MS));
    assert!(
        d.events
            .iter()
            .filter(|e| e.event_type.known().is_none())
            .all(|e| e.course().is_some())
    );
    let mut types = d.custom_event_types.clone();
    types.sort();
    assert!(types.contains(&"forumng".to_owned()) && types.contains(&"oucontent".to_owned()));
}
